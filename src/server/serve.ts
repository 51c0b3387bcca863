/**
 * Running the server in the foreground: open the store with its keys, serve HTTP and the control
 * socket, write the PID file, and stop gracefully on SIGTERM/SIGINT (refuse new writes, finish
 * in-flight requests, flush, close the store, remove the PID file and socket).
 */
import { rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import { type Config, bodyLimitFor } from '../config/config.js';
import { WRITES_REFUSED, err, isEventDbxError, noteOpenFilesLimit, toEventDbxError } from '../core/errors.js';
import { readOpenFilesLimit } from '../fs/open-files-limit.js';
import { httpUrl, listenError, listenHost, reachableHost } from './listen-address.js';
import { type RestrictMode, installSchemas } from '../store/schemas.js';
import { RESTORED_ACTION, recordRestore } from '../store/restored.js';
import {
  type RestrictSource,
  SERVER_STARTED,
  type StartMode,
  recordServerStart,
  startRecorded,
} from '../store/server-started.js';
import { openDataDir } from '../store/secure.js';
import type { EventStore } from '../store/store.js';
import { localIdentity } from '../cli/runtime.js';
import { createToken, distrustTokens } from '../store/tokens.js';
import { buildServer } from './app.js';
import { PID_FILE, serveControl } from './control.js';
import { processFacts } from './proc.js';
import { controlHandler } from './control-ops.js';
import { FEATURES, type Feature } from './features.js';
import { VERSION } from '../version.js';
import { type LogFile, logLine } from './log-file.js';
import { DataDirWatch } from './data-dir-watch.js';
import {
  type ConnectionBudget,
  connectionBudget,
  descriptorUse,
  loweredLine,
  tooFewDescriptors,
  watchDescriptors,
} from './descriptors.js';
import { readNoFollow, replaceFile } from '../fs/no-follow.js';

import { type PidInfo, type StartFlag, UNCLEAN_SUFFIX, logLevel } from './daemon-files.js';

/** How long a stopping server lets in-flight requests finish before cutting their connections. */
const SHUTDOWN_GRACE_MS = 5_000;

/** Say in the log that the previous server ended without a clean stop (once), from its stale PID file. */
async function reportUncleanEnd(pidFile: string, log: FastifyBaseLogger): Promise<void> {
  const file = `${pidFile}${UNCLEAN_SUFFIX}`;
  let previous: Partial<PidInfo>;
  try {
    previous = JSON.parse(await readNoFollow(file)) as Partial<PidInfo>;
  } catch (e) {
    if (!isEventDbxError(e, 'EDBX_ERR_FILE_REFUSED')) return;
    // A link put there (runningServer renamed a planted PID file): never read through, removed.
    log.warn({ code: e.code }, e.message);
    await rm(file, { force: true });
    return;
  }
  await rm(file, { force: true });
  log.warn(
    { previous_pid: previous.pid, previous_started_at: previous.started_at },
    'the previous server ended without a clean stop (killed, crashed or the machine went down); acknowledged writes are durable, and `eventdbx aggregate verify` checks the store',
  );
}

/** Record a restore (a backup put in place of the data dir) in the audit log, and say what it undid. */
async function reportRestore(
  store: EventStore,
  dataDir: string,
  log: FastifyBaseLogger,
  announce: (line: string) => void,
): Promise<void> {
  const backup = await recordRestore(store, dataDir, localIdentity());
  if (!backup) return;
  const what =
    `this data dir is a backup taken at ${backup.taken_at} (${backup.events} events), restored: ` +
    'everything done after it is undone, token revocations included (those tokens work again: ' +
    `revoke them again; \`eventdbx audit list --data-dir <old data dir> --from-position ` +
    `${backup.events + 1}\` lists them, everything committed after the backup). The restore is ` +
    `recorded in the audit log (${RESTORED_ACTION}).`;
  log.warn({ backup_taken_at: backup.taken_at, backup_events: backup.events }, what);
  announce(`\nNote: ${what}\n`);
}

/**
 * Record in the audit log, before the server listens, a start whose restriction mode is not the
 * configured `true` (recordServerStart), and say so in the log. A store that refuses writes admits no
 * event in any mode, and cannot record it: its log says so.
 */
async function recordStartMode(store: EventStore, o: ServeOptions, log: FastifyBaseLogger): Promise<void> {
  const mode: StartMode = {
    restrict: o.restrict,
    source: o.restrictSource,
    configured: o.config.file.restrict ?? 'true',
  };
  const fields = { restrict: mode.restrict, restrict_source: mode.source, configured: mode.configured };
  if (store.writeFailure) {
    if (startRecorded(mode))
      log.warn(fields, `restrict=${o.restrict} not recorded in the audit log: the store refuses writes`);
    return;
  }
  const recorded = await recordServerStart(store, mode, localIdentity());
  // Schemas off is a warning; another mode than configured is news.
  if (recorded)
    log[o.restrict === 'false' ? 'warn' : 'info'](
      fields,
      `schema enforcement is restrict=${o.restrict} (from ${mode.source}; configured ${mode.configured}): recorded in the audit log (${SERVER_STARTED})`,
    );
}

/** Refuse the token records the audit log does not vouch for, saying which and why in the log. */
async function refuseUnvouchedTokens(store: EventStore, log: FastifyBaseLogger): Promise<void> {
  const { refused, unchecked } = await distrustTokens(store);
  if (unchecked !== undefined)
    log.warn(`tokens not checked against the audit log, which cannot be read: ${unchecked}`);
  for (const problem of refused)
    log.warn(
      { code: 'EDBX_ERR_TOKEN_DISTRUSTED' },
      `${problem}: refused until an admin refreshes or revokes it (\`eventdbx audit verify\` lists every difference)`,
    );
}

/**
 * The cap on connections this process's open-files limit leaves once the store, its plugins and
 * commands have their descriptors (descriptors.ts); a limit that leaves too few refuses the start,
 * with the store closed again.
 */
async function descriptorBudget(
  configured: number,
  store: EventStore,
  dataDir: string,
): Promise<ConnectionBudget> {
  // Read again (the CLI read it as it started): what this server runs with, for its errors too.
  const limit = readOpenFilesLimit();
  noteOpenFilesLimit(limit);
  try {
    const budget = connectionBudget(configured, limit, await descriptorUse(store, dataDir));
    const refused = tooFewDescriptors(budget);
    if (refused) throw refused;
    return budget;
  } catch (e) {
    await store.close().catch(() => undefined);
    throw toEventDbxError(e);
  }
}

export interface ServeOptions {
  readonly config: Config;
  readonly port: number;
  readonly restrict: RestrictMode;
  /** Where `restrict` came from (see StartMode). */
  readonly restrictSource: RestrictSource;
  /** Which of port and restriction the command line gave (the rest came from the configuration). */
  readonly given: readonly StartFlag[];
  /** Print the bootstrap admin token (first start of an empty store) to this stream. */
  readonly announce: (line: string) => void;
  /**
   * The daemon's log file (`start` without `--foreground`): the server logs into it, and SIGHUP
   * reopens it. Without one (`start --foreground`) the server logs to stdout, which SIGHUP leaves be.
   */
  readonly logFile?: LogFile;
  /** The bootstrap admin token itself, for `start --json`. */
  readonly onAdminToken?: (token: { token: string; id: string; expires_at: string | null }) => void;
}

/**
 * SIGHUP (logrotate's postrotate, systemd's ExecReload) reopens the daemon's log by its name, saying so
 * in the old file and the new one, and never stops the server (Node's default would end it at once).
 * `log` is the server's logger once it exists (a SIGHUP while the store opens is answered too).
 */
function onHangup(file: LogFile | undefined, log: () => FastifyBaseLogger | undefined): () => void {
  const say = (level: 'info' | 'warn', msg: string) => {
    const logger = log();
    if (logger) logger[level]({ signal: 'SIGHUP' }, msg);
    else if (file) file.write(logLine(level, msg, { signal: 'SIGHUP' }));
    else process.stdout.write(logLine(level, msg, { signal: 'SIGHUP' }));
  };
  return () => {
    if (!file)
      return say('info', 'SIGHUP: this server logs to its stdout (start --foreground): nothing to reopen');
    say('info', `SIGHUP: reopening the log by its name, ${file.path}`);
    try {
      file.reopen();
    } catch (e) {
      // A link put in its place is refused (never followed): the refusal says what to do.
      const reason = isEventDbxError(e) ? e.message : ((e as NodeJS.ErrnoException).code ?? String(e));
      return say(
        'warn',
        `SIGHUP: cannot reopen the log ${file.path} (${reason}): still writing to the file opened before`,
      );
    }
    say('info', 'log reopened (SIGHUP)');
  };
}

export async function serveForeground(o: ServeOptions): Promise<void> {
  const dataDir = o.config.dataDir;
  const level = logLevel();
  let logger: FastifyBaseLogger | undefined;
  process.on(
    'SIGHUP',
    onHangup(o.logFile, () => logger),
  );
  o.logFile?.reportCrashes();
  const host = listenHost();
  const secure = await openDataDir(o.config);
  const { store } = secure;
  const budget = await descriptorBudget(o.config.maxConnections, store, dataDir);
  const place = await DataDirWatch.of(dataDir);
  // Aborted when the stop stops waiting: long reads still running end with the stop's 503.
  const stopping = new AbortController();
  const stopReads = () => stopping.abort(err('EDBX_ERR_SHUTTING_DOWN'));
  const { app, drain } = await buildServer({
    store,
    version: VERSION,
    restrict: o.restrict,
    logger: { level, redact: ['req.headers.authorization'], ...(o.logFile ? { stream: o.logFile } : {}) },
    bodyLimit: bodyLimitFor(o.config.maxPayloadBytes),
    maxBufferedBodyBytes: o.config.maxBufferedBodyBytes,
    maxConnections: budget.effective,
    maxStreamsPerToken: o.config.maxStreamsPerToken,
    streamHeartbeatMs: o.config.streamHeartbeatMs,
    stopSignal: stopping.signal,
    extraRoutes: FEATURES.filter((f) => f.routes).map((f) => (a, ctx) => f.routes!(a, ctx, secure)),
  });
  logger = app.log;
  const lowered = loweredLine(budget);
  if (lowered) app.log.warn(lowered.fields, lowered.msg);
  store.onListenerError((e) => app.log.error({ err: e }, 'a commit listener failed'));
  await installSchemas(store, o.restrict);
  await refuseUnvouchedTokens(store, app.log);
  // The port first: a start that cannot listen stops before anything (plugins, the control socket)
  // runs that would have to be undone, and the process exits. Its mode is in the audit log before
  // the first request can be admitted in it, and in the log's start line.
  try {
    await recordStartMode(store, o, app.log); // (its refusal is a registry error, passed on as is)
    await app.listen({
      port: o.port,
      host,
      listenTextResolver: (address) =>
        `Server listening at ${address} (restrict=${o.restrict}, from ${o.restrictSource})`,
    });
  } catch (e) {
    await app.close().catch(() => undefined);
    await store.close();
    throw listenError(e, o.port, host);
  }
  // The address itself (a host name resolved): `status` reaches the server there.
  const bound = (app.server.address() as AddressInfo | null)?.address ?? host;
  const started: Feature[] = [];
  let control: Awaited<ReturnType<typeof serveControl>>;
  try {
    for (const f of FEATURES) {
      await f.start?.(secure, app.log);
      started.push(f);
    }
    control = await serveControl(dataDir, controlHandler(secure, app.log), stopping.signal, app.log);
  } catch (e) {
    await app.close().catch(() => undefined);
    for (const f of started.reverse()) await f.stop?.().catch(() => undefined);
    await store.close();
    throw toEventDbxError(e);
  }
  const pidFile = path.join(dataDir, PID_FILE);
  let stopped = false;
  // The store grows, plugins come and go: the cap follows what they need (no limit known: no cap moves).
  const unwatch =
    budget.limit === undefined
      ? () => undefined
      : watchDescriptors({
          server: app.server,
          log: app.log,
          budget,
          use: () => descriptorUse(store, dataDir),
        });

  /**
   * The data dir is no longer at its path (DataDirWatch): end now, as `kill -9` would, touching
   * nothing by that path — not the store (closing it writes new files there and deletes old ones), not
   * the PID file, not the socket. Every acknowledged write is in the moved files' write-ahead log.
   */
  const abandon = (why: string): never => {
    app.log.fatal(
      { code: 'EDBX_ERR_DATA_DIR_MOVED' },
      `${why}: stopping at once, writing nothing there (every write acknowledged is in the files where they are now; start a server on them to go on with them)`,
    );
    process.exit(1);
  };

  const shutdown = async (signal: string) => {
    if (stopped) return;
    stopped = true;
    place.stop();
    unwatch();
    const moved = await place.check();
    if (moved !== undefined) abandon(moved);
    app.log.info({ signal }, 'stopping: refusing new writes, finishing in-flight requests');
    drain();
    control.close();
    // `status` meanwhile says the server is stopping (it no longer listens), not that it hangs.
    const marked = async () =>
      replaceFile(pidFile, JSON.stringify({ ...info, stopping_since: new Date().toISOString() }) + '\n');
    await marked().catch(() => undefined); // (a signal before the PID file was written: nothing to mark)
    // A request still unfinished after the grace period (a client that stopped sending mid-body) is cut,
    // so the store still closes cleanly, well before `stop` would have to kill the process.
    const cut = setTimeout(() => {
      stopReads();
      app.server.closeAllConnections();
    }, SHUTDOWN_GRACE_MS);
    cut.unref();
    try {
      await app.close();
      clearTimeout(cut);
      // Commands of the control socket are not waited for: their long reads stop before the store closes.
      stopReads();
      for (const f of [...FEATURES].reverse()) await f.stop?.();
      const late = await place.check(); // moved during the grace period
      if (late !== undefined) abandon(late);
      await store.close();
    } finally {
      await rm(pidFile, { force: true });
      await rm(path.join(dataDir, 'control.sock'), { force: true });
      app.log.info('stopped');
      process.exit(0);
    }
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));

  const info: PidInfo = {
    pid: process.pid,
    port: o.port,
    started_at: new Date().toISOString(),
    restrict: o.restrict,
    given: o.given,
    version: VERSION,
    data_dir: dataDir,
    host: bound,
    ...(processFacts(process.pid) ? { process_start: processFacts(process.pid)!.start } : {}),
  };
  try {
    // Replaced, never written through: a link planted at its name is replaced, not its target.
    await replaceFile(pidFile, JSON.stringify(info) + '\n');
    await reportUncleanEnd(pidFile, app.log);
    await reportRestore(store, dataDir, app.log, o.announce);
    await announceStart(o, store, bound, lowered?.msg);
    place.watch((why) => {
      if (!stopped) abandon(why);
    }, o.config.dataDirCheckMs);
  } catch (e) {
    // A start that fails once listening leaves nothing running: `start` says it failed, and it did.
    stopped = true;
    unwatch();
    drain();
    control.close();
    await app.close().catch(() => undefined);
    stopReads();
    for (const f of [...FEATURES].reverse()) await f.stop?.().catch(() => undefined);
    await store.close().catch(() => undefined);
    await rm(pidFile, { force: true });
    await rm(path.join(dataDir, 'control.sock'), { force: true });
    throw toEventDbxError(e);
  }
}

/**
 * What a started server prints: a cap on connections its open-files limit lowered (`lowered`), a
 * write failure found on opening, the bootstrap token, the banner.
 */
async function announceStart(
  o: ServeOptions,
  store: EventStore,
  bound: string,
  lowered: string | undefined,
): Promise<void> {
  const dataDir = o.config.dataDir;
  if (lowered) o.announce(`\nWarning: ${lowered}\n`);
  // Found on opening the store (events it acknowledged are gone, its ledger head is wrong): it serves
  // reads, refuses writes, and /health answers 503 with the same line (the server logs it).
  const refused = store.writeFailure;
  if (refused) o.announce(`\nWarning: ${WRITES_REFUSED}: ${refused.message} [${refused.code}]\n`);

  if (store.tokens.size === 0 && refused) {
    o.announce('No tokens exist, and none can be created while writes are refused.\n');
  } else if (store.tokens.size === 0) {
    const t = await createToken(
      store,
      { group: 'admin', user: 'admin', expiration: 24 * 3600 },
      { issuedBy: { group: 'local', user: 'bootstrap' } },
    );
    o.onAdminToken?.({ token: t.token, id: t.id, expires_at: t.expires_at });
    o.announce(
      `\nNo tokens existed, so a one-time admin token was created (valid 24 h; shown only now):\n\n  ${t.token}\n`,
    );
    o.announce(
      `Try it:\n\n  curl -H "Authorization: Bearer ${t.token}" ${httpUrl(reachableHost(bound), o.port)}/v1/aggregates\n`,
    );
    o.announce(
      `Issue personal tokens with: npx eventdbx token generate --group <group> --user <user> --expiration 3600\n`,
    );
  }
  const unspecified = reachableHost(bound) !== bound;
  o.announce(
    `EventDBX ${VERSION} listening on ${httpUrl(bound, o.port)}${unspecified ? ' (every interface)' : ''} (pid ${process.pid}, data ${dataDir}, restrict=${o.restrict})`,
  );
}
