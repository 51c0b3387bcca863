/**
 * Starting a worker thread on one of our own modules. The built package runs the compiled `.js` file.
 * Running from the TypeScript sources (vitest, vite-node benchmarks) the module is a `.ts` file, which
 * Node 20 cannot load by itself: the worker then registers tsx's loader first (a development
 * dependency, never needed by the built package).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * A worker running the module `name` beside the caller's module `from` (its `import.meta.url`): the
 * `.ts` source beside a source, the `.js` file beside a built file.
 *
 * @example
 * const worker = moduleWorker(import.meta.url, 'verify-thread', { workerData });
 */
export function moduleWorker(from: string, name: string, options: WorkerOptions = {}): Worker {
  const source = from.endsWith('.ts');
  const url = new URL(`./${name}.${source ? 'ts' : 'js'}`, from);
  if (!source) return fileWorker(url, options);
  // Only dynamic imports: under `--input-type=module` the source is a module, otherwise a script.
  const bootstrap =
    `import(${JSON.stringify(tsxApi())})` +
    `.then(({ register }) => { register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(bootstrap, { ...options, eval: true });
}

/**
 * A worker running a file. It inherits the process's flags, but a process started with
 * `node --input-type=module -e …` would have it refused (that flag only applies to string input): the
 * flags are then passed without it, and without any at all if Node finds one of the others is not
 * for workers (explicit flags are checked, inherited ones are not).
 */
function fileWorker(url: URL, options: WorkerOptions): Worker {
  const argv = process.execArgv;
  const inputType = (a: string) => a === '--input-type' || a.startsWith('--input-type=');
  if (!argv.some(inputType)) return new Worker(url, options);
  const kept = argv.filter((a, i) => !inputType(a) && !(i > 0 && argv[i - 1] === '--input-type'));
  try {
    return new Worker(url, { execArgv: kept, ...options });
  } catch (e) {
    if ((e as { code?: unknown }).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw e;
    return new Worker(url, { execArgv: [], ...options });
  }
}

let api: string | undefined;

/** URL of tsx's ES module API, read from its package's export map (its CommonJS entry cannot register). */
function tsxApi(): string {
  if (api === undefined) {
    const manifest = createRequire(import.meta.url).resolve('tsx/package.json');
    const exports = JSON.parse(readFileSync(manifest, 'utf8')).exports as Record<string, any>;
    api = pathToFileURL(path.join(path.dirname(manifest), exports['./esm/api'].import.default)).href;
  }
  return api;
}
