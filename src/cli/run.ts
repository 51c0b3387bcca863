/**
 * Run one store operation for the CLI: through the running server's control socket when a server
 * runs (RocksDB allows one process), else on the store opened here. Same output and exit codes.
 */
import path from 'node:path';
import { toEventDbxError } from '../core/errors.js';
import { callControl } from '../server/control.js';
import type { Config } from '../config/config.js';
import type { SecureStore } from '../store/secure.js';
import { type StartMode, recordCommandMode, unflaggedSource } from '../store/server-started.js';
import { HUMAN, HUMAN_LISTS, resultFailed } from './human.js';
import { ReaderGone, jsonList } from './list-output.js';
import { LISTINGS, OPS } from './ops.js';
import { printJson } from './output.js';
import { type ProgressWords, progress } from './progress.js';
import { reportError } from './report.js';
import { checkDataDirOwner, localIdentity, openLocalStore, proofOfKeys, requireConfig } from './runtime.js';

/**
 * Operations that report their progress on stderr (a bar on a terminal, else a line now and then:
 * progress.ts), and what they count.
 */
const PROGRESS: Readonly<Record<string, ProgressWords>> = {
  'aggregate.verify': { doing: 'verifying', done: 'verified', unit: 'aggregates' },
  backup: { doing: 'backing up', done: 'backed up', unit: 'entries' },
};

/**
 * Operations that check a store: their output says which data dir they checked, and whether its
 * running server did (QA disaster-recovery finding 6: a verify that passes must not be taken for one
 * of another store, such as a restore started with `start --data-dir`).
 */
const CHECKS = new Set(['aggregate.verify', 'audit.verify', 'checkpoint.verify']);

/**
 * Operations that Ctrl-C stops cleanly when the CLI runs them itself (a backup removes what it wrote).
 * Through a server, Ctrl-C ends the CLI and the server stops the command when its connection closes.
 */
const CANCELLABLE = new Set(['backup']);

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

async function commandConfig(opts: Record<string, unknown>, configFile?: string): Promise<Config> {
  const loaded = await requireConfig(configFile);
  // `--data-dir` (the commands that take it) names another data dir than the config's.
  const config =
    opts.dataDir === undefined ? loaded : { ...loaded, dataDir: path.resolve(String(opts.dataDir)) };
  // Before its keyring copy is read or its server asked: root refuses another account's data dir.
  checkDataDirOwner(config.dataDir);
  return config;
}

/** What a command ran on: the data dir, and whether through its running server. */
interface Ran {
  readonly result: Record<string, unknown>;
  readonly dataDir: string;
  readonly server: boolean;
}

/** The commands that write events, whose restriction mode is recorded as a server's start is. */
const WRITES_EVENTS = new Set(['aggregate.apply', 'aggregate.commit']);

/**
 * A command writing events on a store opened here in a mode other than the configured `true`
 * (`EVENTDBX_RESTRICT=false`) is recorded in the audit log first (`command-run`), as `start` is.
 */
async function recordMode(secure: SecureStore, config: Config, op: string): Promise<void> {
  const mode: StartMode = {
    restrict: config.restrict,
    source: unflaggedSource(),
    configured: config.file.restrict ?? 'true',
  };
  if (secure.store.writeFailure) return; // refused as the write itself will be
  await recordCommandMode(secure.store, mode, op.replace('.', ' '), localIdentity());
}

/** Close the store, then throw `e` on. */
const closing =
  (secure: SecureStore) =>
  async (e: unknown): Promise<never> => {
    await secure.store.close();
    throw e;
  };

async function execute(op: string, opts: Record<string, unknown>, configFile?: string): Promise<Ran> {
  const config = await commandConfig(opts, configFile);
  const identity = localIdentity();
  const words = PROGRESS[op];
  // `--json` is for scripts, which may read stderr with stdout: no progress there.
  const bar =
    words !== undefined && !opts.json ? await progress(words, config.progressIntervalMs) : undefined;
  try {
    const proof = await proofOfKeys(config);
    const remote = await callControl(
      config.dataDir,
      { op, args: wireArgs(opts), identity, proof },
      bar?.update,
    );
    const ran = (result: unknown, server: boolean): Ran => ({
      result: result as Record<string, unknown>,
      dataDir: config.dataDir,
      server,
    });
    if (remote) return ran(remote.result, true);
    const secure = await openLocalStore(config);
    if (WRITES_EVENTS.has(op) && !opts.discard) await recordMode(secure, config, op).catch(closing(secure));
    const interrupt = CANCELLABLE.has(op) ? interruptible() : undefined;
    try {
      const args = wireArgs(opts);
      return ran(await OPS[op]!(secure, args, { issuedBy: identity }, bar?.update, interrupt?.signal), false);
    } finally {
      interrupt?.done();
      await secure.store.close();
    }
  } finally {
    bar?.stop();
  }
}

/**
 * A listing (LISTINGS), printed a page at a time as the server sends it or the store here reads it.
 * Output and exit code are those of the same listing printed whole; one cut off by an error prints
 * the error line and exits non-zero, its output left unfinished (see list-output.ts).
 */
async function runListing(op: string, opts: Record<string, unknown>, configFile?: string): Promise<number> {
  const listing = LISTINGS[op]!;
  const printer = opts.json ? jsonList(listing.key) : HUMAN_LISTS[op]!();
  try {
    const config = await commandConfig(opts, configFile);
    const args = wireArgs(opts);
    const request = { op, args, identity: localIdentity(), proof: await proofOfKeys(config), stream: true };
    const remote = await callControl(config.dataDir, request, undefined, {}, (items) => printer.items(items));
    if (remote) {
      // A server of an earlier version answers with the whole list.
      const whole = (remote.result as Record<string, unknown> | null)?.[listing.key];
      if (Array.isArray(whole)) await printer.items(whole);
    } else {
      const secure = await openLocalStore(config);
      try {
        for await (const page of listing.pages(secure, args)) await printer.items(page);
      } finally {
        await secure.store.close();
      }
    }
    await printer.end();
    return 0;
  } catch (e) {
    if (e instanceof ReaderGone) return 0;
    return reportError(toEventDbxError(e));
  }
}

export async function runOp(op: string, opts: Record<string, unknown>, configFile?: string): Promise<number> {
  if (op in LISTINGS) return runListing(op, opts, configFile);
  try {
    const { result, dataDir, server } = await execute(op, opts, configFile);
    const checked = CHECKS.has(op);
    if (opts.json) printJson(checked ? { ...result, data_dir: dataDir, checked_by_server: server } : result);
    else {
      const by = server ? 'checked by its running server' : 'opened by this command: no server runs for it';
      process.stdout.write(HUMAN[op]!(result) + (checked ? `\ndata dir ${dataDir} (${by})` : '') + '\n');
    }
    return resultFailed(op, result) ? 1 : 0;
  } catch (e) {
    return reportError(toEventDbxError(e));
  }
}
