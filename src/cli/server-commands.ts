/** `start`, `stop`, `status`, `restart`, `destroy`: the server lifecycle around the PID file. */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline/promises';
import { fileURLToPath } from 'node:url';
import { type Config, loadConfig, writeConfigFile } from '../config/config.js';
import { err, isEventDbxError, shellWord, toEventDbxError } from '../core/errors.js';
import { wholeNumber } from '../core/names.js';
import { RESTRICT_MODES, type RestrictMode } from '../core/schema.js';
import {
  DEFAULT_HOST,
  boundAddress,
  httpUrl,
  isWildcard,
  listenHost,
  listenProblem,
  reachableHost,
} from '../server/listen-address.js';
import { callControl } from '../server/control.js';
import { processFacts } from '../server/proc.js';
import {
  LOG_FILE,
  PID_FILE,
  type PidInfo,
  type StartFlag,
  UNCLEAN_SUFFIX,
  logLevel,
} from '../server/daemon-files.js';
import type { LogFile } from '../server/log-file.js';
import { type RestrictSource, unflaggedSource } from '../store/server-started.js';
import { openNoFollow, openNoFollowSync, readNoFollow } from '../fs/no-follow.js';
import { keyValues, printJson } from './output.js';
import { reportError } from './report.js';
import { checkDestroyable, checkNewStoreDir, readDataDir, removeDataDir } from './data-dir.js';
import { checkDataDirOwner, localIdentity, proofOfKeys, requireKeys, warnIfDataDirOpen } from './runtime.js';
import { stderrIsLog, warn } from './stderr.js';
import { makeDir } from '../fs/make-dir.js';
import { refuseBackupInPlace } from '../store/restored.js';
import { type MovedServer, serverOnMovedDataDir } from './moved-server.js';

/** Start options whose value may come from the command line or the configuration. */
const START_FLAGS: readonly StartFlag[] = ['port', 'restrict'];
/** `status` waits this long for the server's /health before saying it does not answer. */
const HEALTH_TIMEOUT_MS = 5000;

/** `--restrict[=mode]` (alone: true), or undefined when not given (the configuration's mode applies). */
function restrictFlag(value: unknown): RestrictMode | undefined {
  if (value === undefined) return undefined;
  if (value === true) return 'true';
  if (typeof value === 'string' && (RESTRICT_MODES as readonly string[]).includes(value))
    return value as RestrictMode;
  // A bad value, like a bad --port: exit 1 (exit 2 is for a malformed command line).
  throw err('EDBX_ERR_INVALID_ARGUMENT', { name: '--restrict', value, reason: 'use true, strict or false' });
}

function portFlag(value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  const n = wholeNumber(value);
  if (n === undefined || n < 1 || n > 65535)
    throw err('EDBX_ERR_INVALID_ARGUMENT', { name: '--port', value, reason: 'use 1-65535' });
  return n;
}

/**
 * Whether the process is still running, and (given the start time the PID file recorded) still the
 * process the PID file was written by. A zombie (exited, not reaped yet) is not running.
 */
const alive = (pid: number, start?: string): boolean => {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const facts = processFacts(pid);
  if (!facts) return true; // no /proc: a process with that PID exists, nothing more is known
  if (facts.state === 'Z' || facts.state === 'X') return false;
  return start === undefined || facts.start === start;
};

/** The running server of a data dir, cleaning a stale PID file. */
export async function runningServer(dataDir: string): Promise<PidInfo | undefined> {
  const file = path.join(dataDir, PID_FILE);
  let info: PidInfo;
  try {
    info = JSON.parse(await readNoFollow(file)) as PidInfo;
  } catch (e) {
    // A link in its place (qa-pen #3): never read through, nor taken for "not running".
    if (isEventDbxError(e, 'EDBX_ERR_FILE_REFUSED')) throw e;
    // Another user than the data dir's owner cannot tell whether a server runs: never "not running".
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM')
      throw err('EDBX_ERR_DATA_DIR_NOT_READABLE', { path: dataDir, reason: code });
    return undefined;
  }
  if (Number.isSafeInteger(info.pid) && alive(info.pid, info.process_start)) return info;
  // The server it names ended without a clean stop (killed, crashed, the machine went down): the next
  // server's log says so (serve.ts reads this).
  await rename(file, `${file}${UNCLEAN_SUFFIX}`).catch(() => rm(file, { force: true }));
  await rm(path.join(dataDir, 'control.sock'), { force: true });
  return undefined;
}

/**
 * No server runs at `dataDir`'s path: refuse when the server started on it still runs on its files
 * moved elsewhere or removed (moved-server.ts), rather than say nothing runs.
 */
async function refuseMoved(dataDir: string): Promise<void> {
  const moved = await serverOnMovedDataDir(dataDir);
  if (moved) throw movedError(dataDir, moved);
}

const movedError = (dataDir: string, moved: MovedServer) =>
  err('EDBX_ERR_DATA_DIR_MOVED', { data_dir: dataDir, pid: moved.pid, now: moved.now, port: moved.port });

/** Config for starting: flags override; a missing config becomes a development config with random keys. */
async function startConfig(
  opts: Record<string, unknown>,
  configFile: string | undefined,
  say: (s: string) => void,
): Promise<Config> {
  let config = await loadConfig(configFile);
  // A config named by --config or EVENTDBX_CONFIG that is not there is a mistake (a typo in a unit
  // file must not bring up an empty store): only the implicit ./.eventdbx.json is created.
  const named = configFile !== undefined || Boolean(process.env.EVENTDBX_CONFIG);
  if (!config.exists && named && !(config.masterKey && config.dek))
    throw err('EDBX_ERR_CONFIG_MISSING', { path: config.path });
  const dataDir = opts.dataDir === undefined ? config.dataDir : path.resolve(String(opts.dataDir));
  // Before a development config names it (qa-spec #1): never a store mixed into a project's files.
  checkNewStoreDir(dataDir, config.path);
  if (!config.exists && !(config.masterKey && config.dek)) {
    const given = [opts.dataDir === undefined ? '' : 'data dir', opts.port === undefined ? '' : 'port'];
    const recorded = given.some(Boolean) ? ` (and this ${given.filter(Boolean).join(' and ')})` : '';
    // The data dir and port given to this start are recorded too, so that the commands printed next
    // (`token generate`, …) reach this server rather than opening a new store in ./.eventdbx.
    await writeConfigFile(config.path, {
      master_key: randomBytes(32).toString('base64url'),
      dek: randomBytes(32).toString('base64url'),
      ...(opts.dataDir === undefined ? {} : { data_dir: path.resolve(String(opts.dataDir)) }),
      ...(opts.port === undefined ? {} : { port: portFlag(opts.port, config.port) }),
    });
    say(
      `No configuration found: created a development config with random keys${recorded} at ${config.path} (mode 0600).`,
    );
    say(
      'For production, run `eventdbx config --master-key <secret> --dek <secret>` or set EVENTDBX_MASTER_KEY / EVENTDBX_DEK.',
    );
    config = await loadConfig(configFile);
  }
  requireKeys(config);
  return { ...config, dataDir, port: portFlag(opts.port, config.port) };
}

/** What `start --json` prints once the server serves (restart adds what it stopped). */
interface Started {
  started: true;
  pid: number;
  port: number;
  data_dir: string;
  restrict: string;
  config: string;
  log: string | null;
  admin_token?: { token: string; id: string; expires_at: string | null };
  notices: string[];
}

/**
 * Start the server. `extra` is added to `--json`'s output, and `notes` (lines) are printed once it
 * started (listed in `notices` with `--json`): restart's account of what changed.
 */
async function start(
  opts: Record<string, unknown>,
  configFile: string | undefined,
  extra: Record<string, unknown> = {},
  notes: readonly string[] = [],
): Promise<number> {
  const daemonChild = typeof process.send === 'function';
  // Its stderr is the server's JSON-lines log: warnings and errors from here on are lines of it.
  if (daemonChild) stderrIsLog();
  const json = Boolean(opts.json) && !daemonChild;
  const notices: string[] = [];
  let adminToken: Started['admin_token'];
  const say = (line: string) => {
    if (daemonChild) void tellLauncher({ type: 'announce', line });
    else if (json) notices.push(line.trim());
    else process.stdout.write(line + '\n');
  };
  const flagged = restrictFlag(opts.restrict);
  const config = await startConfig(opts, configFile, say);
  const restrict = flagged ?? config.restrict;
  // Said in the server's log and, for a mode other than the configured `true`, its audit log.
  const restrictSource: RestrictSource = flagged !== undefined ? '--restrict' : unflaggedSource();
  const given = START_FLAGS.filter((k) => opts[k] !== undefined);
  // Before its PID file is read: root refuses another account's data dir (its launcher checked for
  // the daemon, which would only repeat the warning into its log).
  if (!daemonChild) checkDataDirOwner(config.dataDir);
  const running = await runningServer(config.dataDir);
  if (running) {
    throw err('EDBX_ERR_ALREADY_RUNNING', { pid: running.pid, port: running.port, data_dir: config.dataDir });
  }
  await refuseMoved(config.dataDir);
  // Before anything (the daemon's log) is written in it: a backup's own directory is not a data dir.
  await refuseBackupInPlace(config.dataDir, Boolean(opts.consumeBackup));
  // The daemon's stderr is its (JSON lines) log: the `start` that spawned it has said so already.
  if (!daemonChild) warnIfDataDirOpen(config.dataDir);
  const started = (pid: number, port: number, log: string | null): Started => ({
    started: true,
    pid,
    port,
    data_dir: config.dataDir,
    restrict,
    config: config.path,
    log,
    ...(adminToken ? { admin_token: adminToken } : {}),
    notices: [...notices, ...notes],
    ...extra,
  });
  if (opts.foreground) {
    if (!json) for (const n of notes) say(n);
    const { serveForeground } = await import('../server/serve.js');
    // The daemon's log, by its name (which SIGHUP reopens): its lines and ours go through it.
    let logFile: LogFile | undefined;
    if (daemonChild) {
      const { LogFile } = await import('../server/log-file.js');
      logFile = new LogFile(path.join(config.dataDir, LOG_FILE));
      stderrIsLog((line) => logFile!.write(line));
    }
    await serveForeground({
      config,
      port: config.port,
      restrict,
      restrictSource,
      given,
      logFile,
      announce: say,
      onAdminToken: (t) => {
        if (!daemonChild) adminToken = t;
        else
          void tellLauncher({ type: 'admin_token', token: t }).then((told) => {
            // Never written anywhere else: the token is a secret (its id is not). Say how to get another.
            if (!told)
              warn(
                `the one-time admin token ${t.id} was not shown: the \`start\` that launched this ` +
                  'server went away first; issue one with `eventdbx token generate --group admin --user <you>`',
                { token_id: t.id },
              );
          });
      },
    });
    if (daemonChild) await tellLauncher({ type: 'ready', pid: process.pid, port: config.port });
    else if (json) printJson(started(process.pid, config.port, null));
    return 0; // the server keeps the process alive until stopped
  }
  return daemonize(
    config,
    {
      port: given.includes('port') ? config.port : undefined,
      restrict: flagged,
      consumeBackup: Boolean(opts.consumeBackup),
    },
    configFile,
    (pid, port, log) => {
      if (json) printJson(started(pid, port, log));
      else
        process.stdout.write(
          `started: pid ${pid}, port ${port}, log ${log}\n${notes.map((n) => `${n}\n`).join('')}`,
        );
    },
    {
      announce: say,
      adminToken: (t) => (adminToken = t),
    },
  );
}

/**
 * Spawn `start --foreground` as a daemon. Only the options this start was given are passed on: the
 * daemon reads the others from the configuration, as this process did, and its PID file records
 * which were given (see PidInfo.given).
 */
async function daemonize(
  config: Config,
  flags: {
    readonly port: number | undefined;
    readonly restrict: RestrictMode | undefined;
    readonly consumeBackup: boolean;
  },
  configFile: string | undefined,
  ready: (pid: number, port: number, log: string) => void,
  on: { announce: (line: string) => void; adminToken: (t: NonNullable<Started['admin_token']>) => void },
): Promise<number> {
  const logPath = path.join(config.dataDir, LOG_FILE);
  let log: number;
  try {
    makeDir(config.dataDir, 0o700);
    // Never through a link put in its place (qa-pen #3): refused, with what to do.
    log = openNoFollowSync(logPath, 'append');
  } catch (e) {
    if (isEventDbxError(e)) throw e;
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw err('EDBX_ERR_DATA_DIR_NOT_WRITABLE', { path: config.dataDir, reason: code });
  }
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  const args = [
    main,
    'start',
    '--foreground',
    '--data-dir',
    config.dataDir,
    ...(flags.port === undefined ? [] : ['--port', String(flags.port)]),
    ...(flags.restrict === undefined ? [] : [`--restrict=${flags.restrict}`]),
    ...(flags.consumeBackup ? ['--consume-backup'] : []),
  ];
  const child = spawn(process.execPath, [...args, ...(configFile ? ['--config', configFile] : [])], {
    detached: true,
    stdio: ['ignore', log, log, 'ipc'],
    env: { ...process.env, EVENTDBX_CONFIG: config.path },
  });
  closeSync(log);
  return new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => finish(new NotStarted(`the server did not become ready within 30 s; see ${logPath}`)),
      30_000,
    );
    const finish = (failed?: NotStarted) => {
      clearTimeout(timer);
      child.removeAllListeners();
      if (child.connected) child.disconnect();
      child.unref();
      if (failed) reject(failed);
      else resolve(0);
    };
    child.on('message', (m: DaemonMessage) => {
      if (m.type === 'announce') on.announce(m.line);
      if (m.type === 'admin_token') on.adminToken(m.token);
      if (m.type === 'error') finish(new NotStarted(m.message, m.code));
      if (m.type === 'ready') {
        ready(m.pid, m.port, logPath);
        finish();
      }
    });
    child.on('exit', async (code) => {
      const tail = (await lastBytes(logPath, 16 * 1024)).trim().split('\n').slice(-3).join('\n');
      finish(
        new NotStarted(`the server exited (code ${code}) before it was ready${tail ? `:\n${tail}` : ''}`),
      );
    });
  });
}

/** The end of a file (a log that may have grown for a year), '' when it cannot be read. */
export async function lastBytes(file: string, bytes: number): Promise<string> {
  try {
    const fh = await openNoFollow(file, 'read');
    try {
      const { size } = await fh.stat();
      const at = Math.max(0, size - bytes);
      const { buffer, bytesRead } = await fh.read(Buffer.alloc(size - at), 0, size - at, at);
      return buffer.subarray(0, bytesRead).toString('utf8');
    } finally {
      await fh.close();
    }
  } catch {
    return '';
  }
}

/**
 * Send a message to the `start` that launched this daemon; false when it is gone (killed, its terminal
 * closed, a supervisor's timeout). The daemon does not depend on its launcher: it runs on either way.
 */
function tellLauncher(message: DaemonMessage): Promise<boolean> {
  if (!process.connected || typeof process.send !== 'function') return Promise.resolve(false);
  return new Promise((resolve) => process.send!(message, undefined, {}, (e) => resolve(!e)));
}

/** IPC from the daemon child to the `start` that spawned it. */
type DaemonMessage =
  | { type: 'announce'; line: string }
  | { type: 'admin_token'; token: NonNullable<Started['admin_token']> }
  | { type: 'error'; message: string; code?: string }
  | { type: 'ready'; pid: number; port: number };

/**
 * A daemon that did not start: the error it reported (its message and code, already formatted by the
 * daemon's registry), or what its launcher saw (it exited, it never became ready).
 */
class NotStarted extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
  /** As the error line shows it: the message, then the code when there is one. */
  get line(): string {
    return this.code === undefined ? this.message : `${this.message} [${this.code}]`;
  }
}

/** Stop the data dir's server; returns the PID it stopped (undefined when none ran). */
async function stopServer(config: Config): Promise<number | undefined> {
  const running = await runningServer(config.dataDir);
  if (!running) return undefined;
  const { pid, process_start: start } = running;
  // By the monotonic clock: a wall-clock step forward during the wait must not cut the graceful stop
  // short with a SIGKILL (QA time finding 4).
  const waitUntil = async (ms: number) => {
    const deadline = performance.now() + ms;
    while (alive(pid, start) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    return !alive(pid, start);
  };
  process.kill(pid, 'SIGTERM');
  if (!(await waitUntil(15_000))) {
    process.stderr.write(`server ${pid} did not stop within 15 s: killing it\n`);
    process.kill(pid, 'SIGKILL');
    if (!(await waitUntil(10_000))) throw err('EDBX_ERR_SERVER_NOT_ANSWERING', { pid, seconds: 25 });
  }
  await rm(path.join(config.dataDir, PID_FILE), { force: true });
  await rm(path.join(config.dataDir, 'control.sock'), { force: true });
  return running.pid;
}

async function stop(config: Config, json: boolean): Promise<number> {
  const pid = await stopServer(config);
  if (pid === undefined) await refuseMoved(config.dataDir);
  if (json) printJson({ stopped: pid !== undefined, pid: pid ?? null, data_dir: config.dataDir });
  else if (pid === undefined) process.stdout.write(`no server is running for ${config.dataDir}\n`);
  else process.stdout.write(`stopped server ${pid}\n`);
  return 0;
}

/**
 * The uptime the server answered, or null where it did not say (or said a negative one: a server of an
 * earlier version counted it by the wall clock).
 */
const uptimeOrNull = (v: unknown): number | null =>
  Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : null;

async function status(config: Config, json: boolean): Promise<number> {
  const running = await runningServer(config.dataDir);
  if (!running) {
    // Not "not running" while the server started on it runs on its files elsewhere (moved-server.ts).
    const moved = await serverOnMovedDataDir(config.dataDir);
    if (json)
      printJson({
        running: false,
        data_dir: config.dataDir,
        ...(moved
          ? { moved_server: { pid: moved.pid, data_dir: moved.now ?? null, port: moved.port ?? null } }
          : {}),
      });
    else if (!moved) process.stdout.write(`not running (no server for ${config.dataDir})\n`);
    if (moved) return reportError(movedError(config.dataDir, moved));
    return 1;
  }
  let health: Record<string, unknown> = {};
  // Where the server listens (a server of an earlier version records no host: the default).
  const host = running.host ?? DEFAULT_HOST;
  if (running.stopping_since !== undefined) health = { status: 'stopping' };
  else {
    // A timer that keeps the process alive (AbortSignal.timeout's does not): a connection the server
    // never takes (at its max_connections) would otherwise leave nothing to wait for, and Node would
    // end the command mid-await with exit code 13 and no word.
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), HEALTH_TIMEOUT_MS);
    try {
      const res = await fetch(`${httpUrl(reachableHost(host), running.port)}/health`, {
        signal: ctl.signal,
      });
      health = (await res.json()) as Record<string, unknown>;
    } catch {
      health = { status: 'not answering' };
    } finally {
      clearTimeout(timer);
    }
  }
  const info = {
    running: true,
    pid: running.pid,
    port: running.port,
    host,
    // The wall-clock time the server recorded in its PID file as it started.
    started_at: running.started_at,
    // The server's own, by its monotonic clock (not this CLI's clock against `started_at`, which a step
    // of either clock makes wrong, even negative: QA time finding 3); null when it did not say.
    uptime_seconds: uptimeOrNull(health.uptime_seconds),
    restrict: running.restrict,
    version: running.version,
    // A number, or null when the server did not say (`health` says why): never a string in its place.
    events: typeof health.events === 'number' ? health.events : null,
    // The store's format version (README "Upgrading"); null when the server did not say.
    layout: typeof health.layout === 'number' ? health.layout : null,
    health: health.status ?? 'unknown',
    data_dir: running.data_dir,
  };
  // Running, but refusing writes since one failed (a full disk), or serving while an operator must act
  // (damaged files met, the acknowledged-head file not written): exit non-zero with the reason, also
  // in `--json` for monitoring scripts (`problem`, null while healthy).
  const troubled = health.status === 'failing' || health.status === 'degraded';
  const code = String(health.code);
  const cause = troubled ? await loggedCause(path.join(config.dataDir, LOG_FILE), code) : undefined;
  if (json)
    printJson({
      ...info,
      problem: troubled ? { code, detail: String(health.detail), logged: cause?.line ?? null } : null,
    });
  else
    process.stdout.write(
      keyValues({
        ...info,
        uptime_seconds: info.uptime_seconds ?? 'unknown (the server did not say; see started_at)',
        events: info.events ?? 'unknown',
        layout: info.layout ?? 'unknown',
      }) + '\n',
    );
  if (troubled) {
    const logged = cause ? `; its log says: ${cause.line} (${cause.file})` : '';
    process.stderr.write(`error: ${String(health.detail)}${logged} [${code}]\n`);
    return 1;
  }
  if (health.status === 'stopping') return reportError(err('EDBX_ERR_SHUTTING_DOWN'));
  if (health.status !== 'not answering') return 0;
  return reportError(
    err('EDBX_ERR_SERVER_NOT_ANSWERING', {
      pid: running.pid,
      seconds: HEALTH_TIMEOUT_MS / 1000,
      command: 'health',
    }),
  );
}

/**
 * What a failing server's log says of the failure (`/health` tells clients only a generic detail: the
 * cause may name the server's files), for the operator who runs `status`: the line and the log file,
 * or undefined when the log holds no such line (a foreground server logs to its terminal).
 */
async function loggedCause(
  logFile: string,
  code: string,
): Promise<{ line: string; file: string } | undefined> {
  const lines = (await lastBytes(logFile, 256 * 1024)).split('\n').reverse();
  for (const line of lines) {
    let entry: { level?: unknown; code?: unknown; msg?: unknown };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      continue;
    }
    if (entry.code === code && Number(entry.level) >= 50 && typeof entry.msg === 'string')
      return { line: entry.msg, file: logFile };
  }
  return undefined;
}

async function destroy(config: Config, yes: boolean, json: boolean): Promise<number> {
  // The config file goes too only when it describes this data dir (`--data-dir` may name another).
  const ownConfig = config.dataDir === (await loadConfig(config.path)).dataDir && existsSync(config.path);
  // Before anything is asked, stopped or removed (qa-spec #1): only a data dir, and only its own files.
  const entries = readDataDir(config.dataDir, ownConfig ? config.path : undefined);
  if (entries) checkDestroyable(config.dataDir, entries);
  if (!entries && !ownConfig) {
    // Nothing there: say so instead of reporting a removal.
    if (json) printJson({ destroyed: false, data_dir: config.dataDir, config: null });
    else process.stdout.write(`nothing to destroy: ${config.dataDir} does not exist\n`);
    return 0;
  }
  const what = ownConfig ? `${config.dataDir} and ${config.path}` : config.dataDir;
  if (!yes) {
    if (!process.stdin.isTTY)
      throw err('EDBX_ERR_USAGE', {
        reason: 'destroy removes all data: pass --yes to confirm when not on a terminal',
      });
    const rl = createInterface({ input: process.stdin, output: process.stdout });
    const answer = await rl.question(`This deletes ${what} for good. Type "destroy" to confirm: `);
    rl.close();
    if (answer.trim() !== 'destroy') {
      if (json) printJson({ destroyed: false });
      else process.stdout.write('cancelled\n');
      return 1;
    }
  }
  const pid = await stopServer(config);
  if (entries) await removeDataDir(config.dataDir, ownConfig ? config.path : undefined);
  if (ownConfig) await rm(config.path, { force: true });
  if (json)
    printJson({
      destroyed: true,
      stopped_pid: pid ?? null,
      data_dir: config.dataDir,
      config: ownConfig ? config.path : null,
    });
  else process.stdout.write(`removed ${what}\n`);
  return 0;
}

/** The environment variable that overrides each start option's configured value. */
const ENV_OF: Readonly<Record<StartFlag, string>> = { port: 'EVENTDBX_PORT', restrict: 'EVENTDBX_RESTRICT' };

/**
 * The keys the new server would be given must open the store: the running server checks them (as it
 * checks a command's) before it is stopped. A restart without keys, or with a wrong one, used to stop
 * the server and then fail to start (a missing config even became a development config with random
 * keys). Without a keyring copy to prove against (restart writes it again), the start finds out.
 */
async function keysOpenStore(config: Config): Promise<void> {
  requireKeys(config);
  const proof = await proofOfKeys(config);
  if (proof === undefined) return;
  await callControl(config.dataDir, {
    op: 'checkpoint.public-key',
    args: {},
    identity: localIdentity(),
    proof,
  });
}

/**
 * `restart`: stop, then start with the options the running server was given on its command line and
 * the configuration as it is now for the rest, an option given to `restart` winning. So `config
 * --port` then `restart` moves the server (as `config` says it will), and a plain `restart` does not
 * undo a `start --port` or `--restrict=strict`. What changed is said. Options are checked before the
 * server is stopped: a failed restart must not leave it down.
 */
async function restart(
  config: Config,
  opts: Record<string, unknown>,
  configFile: string | undefined,
): Promise<number> {
  restrictFlag(opts.restrict);
  logLevel(); // a bad EVENTDBX_LOG_LEVEL would stop the server, then fail to start it
  portFlag(opts.port, config.port);
  // EVENTDBX_HOST alike: a name that does not resolve, or an address not of this machine (any port).
  const host = listenHost();
  const hostProblem = await listenProblem(0, host);
  if (hostProblem) throw hostProblem;
  const running = await runningServer(config.dataDir);
  // A server of an earlier version does not record what it was given: both are kept, as they were.
  const kept = (k: StartFlag) =>
    running !== undefined && opts[k] === undefined && (running.given ?? START_FLAGS).includes(k);
  const next = {
    ...(kept('port') ? { port: String(running!.port) } : {}),
    ...(kept('restrict') && (RESTRICT_MODES as readonly string[]).includes(running!.restrict)
      ? { restrict: running!.restrict }
      : {}),
    ...opts,
  };
  const port = portFlag(next.port, config.port);
  const restrict = restrictFlag(next.restrict) ?? config.restrict;
  // The address the new server would be bound to, and the running one's (a PID file of an earlier
  // version records none: that server listened on the default).
  const bound = await boundAddress(host).catch(() => host);
  const wasBound = running?.host ?? DEFAULT_HOST;
  // A port other than the one it holds must be free now (it could still be taken by the time the
  // new server listens, which then says so; this catches the usual mistake before stopping). So must
  // its own port on another address, unless one of the two is every interface: the running server's
  // hold on it would then answer for the probe.
  const ours = port === running?.port && (bound === wasBound || isWildcard(bound) || isWildcard(wasBound));
  const portProblem = ours ? undefined : await listenProblem(port, host);
  if (portProblem) throw portProblem;
  if (running) await keysOpenStore(config);
  const changed: Record<string, { from: string | number; to: string | number; source: string }> = {};
  const notes: string[] = [];
  for (const [k, to] of [
    ['port', port],
    ['restrict', restrict],
  ] as const) {
    if (!running || running[k] === to) continue;
    const env = process.env[ENV_OF[k]] ? ENV_OF[k] : undefined;
    const source = opts[k] !== undefined ? `--${k}` : env ? `environment ${env}` : 'configuration';
    changed[k] = { from: running[k], to, source };
    const from =
      opts[k] !== undefined ? source : env ? `from ${env} in the environment` : 'from the configuration';
    notes.push(`${k} changed: ${running[k]} -> ${to} (${from})`);
  }
  // The address comes from EVENTDBX_HOST alone: a restart from a shell without it moves the server
  // back to the default, which must not pass unsaid (remote clients lose it).
  if (running && bound !== wasBound) {
    const given = Boolean(process.env.EVENTDBX_HOST);
    changed.host = { from: wasBound, to: bound, source: given ? 'environment EVENTDBX_HOST' : 'default' };
    notes.push(
      `host changed: ${wasBound} -> ${bound} (${given ? 'from EVENTDBX_HOST in the environment' : 'EVENTDBX_HOST is not set: the default'})`,
    );
  }
  const stopped = await stopServer(config);
  const extra = { restarted: true, stopped_pid: stopped ?? null, changed };
  if (stopped === undefined) return start(next, configFile, extra, notes);
  try {
    return await start(next, configFile, extra, notes);
  } catch (e) {
    // The server is down now: say so, and how to bring it up with what this restart would have given it.
    const command = [
      'eventdbx start',
      ...(next.port === undefined ? [] : [`--port ${port}`]),
      ...(next.restrict === undefined ? [] : [`--restrict=${restrict}`]),
      ...(opts.dataDir === undefined ? [] : [`--data-dir ${shellWord(config.dataDir)}`]),
      ...(configFile === undefined ? [] : [`--config ${shellWord(configFile)}`]),
    ].join(' ');
    const cause = e instanceof NotStarted ? e : toEventDbxError(e);
    const reason = cause instanceof NotStarted ? cause.line : `${cause.message} [${cause.code}]`;
    const failed = err('EDBX_ERR_RESTART_FAILED', {
      pid: stopped,
      reason,
      data_dir: config.dataDir,
      command,
    });
    if (opts.json)
      printJson({
        restarted: false,
        stopped_pid: stopped,
        started: false,
        data_dir: config.dataDir,
        code: failed.code,
        error: { code: cause.code ?? null, message: cause.message },
        start_command: command,
      });
    throw failed;
  }
}

export async function lifecycle(
  name: string,
  opts: Record<string, unknown>,
  configFile?: string,
): Promise<number> {
  try {
    if (name === 'start') return await start(opts, configFile);
    const base = await loadConfig(configFile);
    // A config named by --config or EVENTDBX_CONFIG that is not there is a typo, as for every other
    // command: never a reason to stop, or destroy, the default data dir beside it (qa-spec #2). Keys
    // in the environment make do without the file, as they do for the others, but not for `destroy`.
    // (`restart` needs the keys: without them it is refused before it stops anything.)
    const named = configFile !== undefined || Boolean(process.env.EVENTDBX_CONFIG);
    const keysInEnv = Boolean(base.masterKey && base.dek) && name !== 'destroy';
    if (named && !base.exists && !keysInEnv && name !== 'restart')
      throw err('EDBX_ERR_CONFIG_MISSING', { path: base.path });
    const config = {
      ...base,
      dataDir: opts.dataDir === undefined ? base.dataDir : path.resolve(String(opts.dataDir)),
    };
    const json = Boolean(opts.json);
    // Before the PID file is read (`stop` signals the process it names): see checkDataDirOwner.
    checkDataDirOwner(config.dataDir);
    if (name === 'stop') return await stop(config, json);
    if (name === 'status') return await status(config, json);
    if (name === 'destroy') return await destroy(config, Boolean(opts.yes), json);
    if (name === 'restart') return await restart(config, opts, configFile);
    throw err('EDBX_ERR_USAGE', { reason: `unknown command ${name}` });
  } catch (e) {
    if (e instanceof NotStarted) {
      // Its daemon wrote the error to the log already; the launcher shows it as it came.
      process.stderr.write(`error: ${e.line}\n`);
      return 1;
    }
    const x = toEventDbxError(e);
    if (typeof process.send === 'function')
      await tellLauncher({ type: 'error', message: x.message, code: x.code });
    return reportError(x);
  }
}
