/**
 * Run one store operation for the CLI: through the running server's control socket when a server
 * runs (RocksDB allows one process), else on the store opened here. Same output and exit codes.
 */
import path from 'node:path';
import { toEventDbxError } from '../core/errors.js';
import { callControl } from '../server/control.js';
import { HUMAN, resultFailed } from './human.js';
import { OPS } from './ops.js';
import { printJson } from './output.js';
import { reportError } from './report.js';
import { localIdentity, openLocalStore, proofOfKeys, requireConfig } from './runtime.js';

/** Operations that show a progress bar on a TTY, and what it counts. */
const PROGRESS: Readonly<Record<string, string>> = {
  'aggregate.verify': 'verifying [{bar}] {value}/{total} aggregates',
  backup: 'backing up [{bar}] {value}/{total} entries',
};

/**
 * Operations that Ctrl-C stops cleanly when the CLI runs them itself (a backup removes what it wrote).
 * Through a server, Ctrl-C ends the CLI and the server stops the command when its connection closes.
 */
const CANCELLABLE = new Set(['backup']);

async function progressBar(
  format: string,
): Promise<{ update: (done: number, total: number) => void; stop: () => void } | undefined> {
  if (!process.stderr.isTTY) return undefined;
  const { SingleBar, Presets } = await import('cli-progress');
  const bar = new SingleBar(
    { stream: process.stderr, format, clearOnComplete: true },
    Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total) {
      if (!started) bar.start(total, 0);
      started = true;
      bar.update(done);
    },
    stop: () => started && bar.stop(),
  };
}

/** Arguments as sent over the wire: commander's option object minus output and location flags. */
function wireArgs(opts: Record<string, unknown>): Record<string, unknown> {
  const { json: _json, dataDir: _dataDir, ...rest } = opts;
  return rest;
}

/** Ctrl-C aborts the returned signal (instead of ending the process) until `done` is called. */
function interruptible(): { signal: AbortSignal; done: () => void } {
  const ctl = new AbortController();
  const abort = () => ctl.abort();
  process.once('SIGINT', abort);
  return { signal: ctl.signal, done: () => process.removeListener('SIGINT', abort) };
}

async function execute(
  op: string,
  opts: Record<string, unknown>,
  configFile?: string,
): Promise<Record<string, unknown>> {
  const loaded = await requireConfig(configFile);
  // `--data-dir` (the commands that take it) names another data dir than the config's.
  const config =
    opts.dataDir === undefined ? loaded : { ...loaded, dataDir: path.resolve(String(opts.dataDir)) };
  const identity = localIdentity();
  const format = PROGRESS[op];
  const bar = format !== undefined && !opts.json ? await progressBar(format) : undefined;
  try {
    const proof = await proofOfKeys(config);
    const remote = await callControl(
      config.dataDir,
      { op, args: wireArgs(opts), identity, proof },
      bar?.update,
    );
    if (remote) return remote.result as Record<string, unknown>;
    const secure = await openLocalStore(config);
    const interrupt = CANCELLABLE.has(op) ? interruptible() : undefined;
    try {
      return (await OPS[op]!(
        secure,
        wireArgs(opts),
        { issuedBy: identity },
        bar?.update,
        interrupt?.signal,
      )) as Record<string, unknown>;
    } finally {
      interrupt?.done();
      await secure.store.close();
    }
  } finally {
    bar?.stop();
  }
}

export async function runOp(op: string, opts: Record<string, unknown>, configFile?: string): Promise<number> {
  try {
    const result = await execute(op, opts, configFile);
    if (opts.json) printJson(result);
    else process.stdout.write(HUMAN[op]!(result) + '\n');
    return resultFailed(op, result) ? 1 : 0;
  } catch (e) {
    return reportError(toEventDbxError(e));
  }
}
