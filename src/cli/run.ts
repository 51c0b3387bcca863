/**
 * Run one store operation for the CLI: through the running server's control socket when a server
 * runs (RocksDB allows one process), else on the store opened here. Same output and exit codes.
 */
import { toEventDbxError } from '../core/errors.js';
import { callControl } from '../server/control.js';
import { HUMAN, resultFailed } from './human.js';
import { OPS } from './ops.js';
import { printJson } from './output.js';
import { reportError } from './report.js';
import { localIdentity, openLocalStore, proofOfKeys, requireConfig } from './runtime.js';

async function progressBar(): Promise<
  { update: (done: number, total: number) => void; stop: () => void } | undefined
> {
  if (!process.stderr.isTTY) return undefined;
  const { SingleBar, Presets } = await import('cli-progress');
  const bar = new SingleBar(
    { stream: process.stderr, format: 'verifying [{bar}] {value}/{total} aggregates', clearOnComplete: true },
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

/** Arguments as sent over the wire: commander's option object minus output flags. */
function wireArgs(opts: Record<string, unknown>): Record<string, unknown> {
  const { json: _json, ...rest } = opts;
  return rest;
}

async function execute(
  op: string,
  opts: Record<string, unknown>,
  configFile?: string,
): Promise<Record<string, unknown>> {
  const config = await requireConfig(configFile);
  const identity = localIdentity();
  const bar = op === 'aggregate.verify' && !opts.json ? await progressBar() : undefined;
  try {
    const proof = await proofOfKeys(config);
    const remote = await callControl(
      config.dataDir,
      { op, args: wireArgs(opts), identity, proof },
      bar?.update,
    );
    if (remote) return remote.result as Record<string, unknown>;
    const secure = await openLocalStore(config);
    try {
      return (await OPS[op]!(secure, wireArgs(opts), { issuedBy: identity }, bar?.update)) as Record<
        string,
        unknown
      >;
    } finally {
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
