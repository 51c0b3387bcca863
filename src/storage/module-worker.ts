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

/** A worker running the module at `url` (a sibling module's URL, from `new URL(…, import.meta.url)`). */
export function moduleWorker(url: URL, options: WorkerOptions = {}): Worker {
  if (!url.pathname.endsWith('.ts')) return new Worker(url, { execArgv: fileExecArgv(), ...options });
  // Only dynamic imports: under `--input-type=module` the source is a module, otherwise a script.
  const source =
    `import(${JSON.stringify(tsxApi())})` +
    `.then(({ register }) => { register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(source, { ...options, eval: true });
}

/**
 * The process's flags, as a worker running a file inherits them, without `--input-type` (a process
 * started with `node --input-type=module -e …` would otherwise refuse to start the worker: the flag
 * only applies to string input).
 */
function fileExecArgv(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--input-type') i++;
    else if (!a.startsWith('--input-type=')) out.push(a);
  }
  return out;
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
