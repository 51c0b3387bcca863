/**
 * Configuration: a JSON file (default `./.eventdbx.json`, or `--config <path>` / `EVENTDBX_CONFIG`),
 * overridden by `EVENTDBX_*` environment variables. Written atomically with mode 0600. Secrets are
 * never printed: `describeConfig` masks them.
 */
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { err, isEventDbxError } from '../core/errors.js';
import { DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_MAX_STATE_BYTES } from '../core/event.js';
import { RESTRICT_MODES, type RestrictMode } from '../core/schema.js';
import { openNoFollow } from '../fs/no-follow.js';
import { DEFAULT_MEMORY_THRESHOLD, defaultVerifyThreads } from '../store/store.js';
import { makeDir } from '../fs/make-dir.js';

export const DEFAULT_CONFIG_PATH = '.eventdbx.json';
export const DEFAULT_DATA_DIR = '.eventdbx';
export const DEFAULT_PORT = 7070;
/**
 * Open HTTP connections the server keeps at most (Node's `server.maxConnections`); one over it is
 * closed at once. Far more than a small host serves well, and far below its open-files limit, which
 * the store's files and the plugins' connections share.
 */
export const DEFAULT_MAX_CONNECTIONS = 1024;
const maxConnections = z.number().int().min(1).max(1_000_000);
/**
 * Event streams one token may have open at once: what a few projections and a dashboard need, and a
 * bound on what one token (leaked, or scripted in a loop) can make the server scan for it.
 */
export const DEFAULT_MAX_STREAMS_PER_TOKEN = 16;
const maxStreamsPerToken = z.number().int().min(1).max(1_000_000);
/**
 * Comment heartbeats on an open event stream (`EVENTDBX_STREAM_HEARTBEAT_MS`), so that proxies do not
 * take a quiet stream for a dead one. At most an hour: `setInterval` takes a delay over 2^31−1 ms for
 * 1 ms, a heartbeat flood on every stream (QA time finding 5).
 */
export const DEFAULT_STREAM_HEARTBEAT_MS = 15_000;
const streamHeartbeatMs = z.number().int().min(100).max(3_600_000);
/** How often a server checks that its data dir is still at its path (`EVENTDBX_DATA_DIR_CHECK_MS`). */
export const DEFAULT_DATA_DIR_CHECK_MS = 1_000;
const dataDirCheckMs = z.number().int().min(100).max(60_000);
/**
 * How often a long CLI command prints a progress line when stderr is not a terminal
 * (`EVENTDBX_PROGRESS_INTERVAL_MS`): up to an hour; 0 prints one at every update.
 */
export const DEFAULT_PROGRESS_INTERVAL_MS = 10_000;
const progressIntervalMs = z.number().int().min(0).max(3_600_000);
/**
 * Bytes of request bodies the server holds at once, all connections together (server/body-budget.ts):
 * 64 bodies of the default body limit. Without a bound, each open connection could hold a body of up
 * to the body limit while its client withholds the last byte.
 */
export const DEFAULT_MAX_BUFFERED_BODY_BYTES = 64 * 1024 * 1024;
const maxBufferedBodyBytes = z
  .number()
  .int()
  .min(1024 * 1024)
  .max(Number.MAX_SAFE_INTEGER);

/**
 * The largest request body the server takes (413 over it): room for a transaction of events of
 * `max_payload_bytes`, and never below 1 MiB.
 */
export const bodyLimitFor = (maxPayloadBytes: number): number => Math.max(1024 * 1024, maxPayloadBytes * 4);

const port = z.number().int().min(1).max(65535);
const MAX_VERIFY_THREADS = 64;
const secret = z.string().min(1);

const FileSchema = z
  .object({
    port: port.optional(),
    data_dir: z.string().min(1).optional(),
    master_key: secret.optional(),
    dek: secret.optional(),
    memory_threshold: z.number().int().min(1).optional(),
    max_payload_bytes: z.number().int().min(1024).optional(),
    max_state_bytes: z.number().int().min(1024).optional(),
    verify_threads: z.number().int().min(0).max(MAX_VERIFY_THREADS).optional(),
    max_connections: maxConnections.optional(),
    max_streams_per_token: maxStreamsPerToken.optional(),
    max_buffered_body_bytes: maxBufferedBodyBytes.optional(),
    restrict: z.enum(RESTRICT_MODES as [RestrictMode, ...RestrictMode[]]).optional(),
  })
  .strict();

export type ConfigFile = z.infer<typeof FileSchema>;

export interface Config {
  readonly path: string;
  readonly exists: boolean;
  readonly port: number;
  readonly dataDir: string;
  readonly masterKey: string | undefined;
  readonly dek: string | undefined;
  readonly memoryThreshold: number;
  readonly maxPayloadBytes: number;
  /** Bound on an aggregate's state (appends that would grow it past this are refused). */
  readonly maxStateBytes: number;
  readonly verifyThreads: number;
  /** Open HTTP connections at most; one over it is closed at once. */
  readonly maxConnections: number;
  /** Event streams one token may have open at once; one more is refused (429). */
  readonly maxStreamsPerToken: number;
  /** Heartbeats on an event stream, in ms (environment only). */
  readonly streamHeartbeatMs: number;
  /** How often a server checks its data dir is still at its path, in ms (environment only). */
  readonly dataDirCheckMs: number;
  /** Progress lines of a long CLI command off a terminal, in ms; 0: every update (environment only). */
  readonly progressIntervalMs: number;
  /**
   * Bytes of request bodies held at once, all connections together; a body that would pass it is
   * refused (503). At least the body limit (`bodyLimitFor(maxPayloadBytes)`).
   */
  readonly maxBufferedBodyBytes: number;
  /**
   * Schema enforcement of a `start` given no `--restrict` (and of CLI commands while no server
   * runs), so that `strict` survives a crash or a restore followed by a plain `start`.
   */
  readonly restrict: RestrictMode;
  /** Values as stored in the file (for updates). */
  readonly file: ConfigFile;
}

export function configPath(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(explicit ?? env.EVENTDBX_CONFIG ?? DEFAULT_CONFIG_PATH);
}

export async function readConfigFile(file: string): Promise<ConfigFile | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err('EDBX_ERR_CONFIG_INVALID', { path: file, reason: (e as Error).message });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw err('EDBX_ERR_CONFIG_INVALID', { path: file, reason: 'not valid JSON' });
  }
  const parsed = FileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw err('EDBX_ERR_CONFIG_INVALID', {
      path: file,
      reason: `${issue.path.join('.') || 'file'}: ${issue.message}`,
    });
  }
  return parsed.data;
}

/**
 * A numeric `EVENTDBX_*` variable, or undefined when unset (or empty). Anything but a whole number in
 * the schema's range (`10s`, `1e3`, `-5`, `1.5`, a number too large) is refused with
 * EDBX_ERR_CONFIG_INVALID naming the variable, the range and its unit, never taken for the default.
 */
function envNumber(
  env: NodeJS.ProcessEnv,
  name: string,
  schema: z.ZodNumber,
  unit?: string,
): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  const whole = /^[0-9]+$/.test(raw);
  if (!whole || !schema.safeParse(n).success) {
    const min = schema.minValue ?? 0;
    const max = schema.maxValue ?? Number.MAX_SAFE_INTEGER;
    const bounds = max >= Number.MAX_SAFE_INTEGER ? `a whole number of at least ${min}` : `${min} to ${max}`;
    const range = unit === undefined ? bounds : `${bounds} (${unit})`;
    throw err('EDBX_ERR_CONFIG_INVALID', {
      path: `environment ${name}`,
      reason: `${JSON.stringify(raw)} is ${whole ? 'out of range' : 'not a whole number'}; use ${range}`,
    });
  }
  return n;
}

function envRestrict(env: NodeJS.ProcessEnv): RestrictMode | undefined {
  const raw = env.EVENTDBX_RESTRICT;
  if (raw === undefined || raw === '') return undefined;
  if ((RESTRICT_MODES as readonly string[]).includes(raw)) return raw as RestrictMode;
  throw err('EDBX_ERR_CONFIG_INVALID', {
    path: 'environment EVENTDBX_RESTRICT',
    reason: `${JSON.stringify(raw)} is not a mode; use true, strict or false`,
  });
}

/**
 * `max_buffered_body_bytes` (environment, file, or the default): never below the body limit, or a body
 * the server takes would be refused whenever it came (503 "retry", for ever). A default below a raised
 * body limit is raised to it; a value given below it is refused.
 */
function bufferedBodyBytes(
  env: NodeJS.ProcessEnv,
  f: ConfigFile,
  file: string,
  maxPayloadBytes: number,
): number {
  const bodyLimit = bodyLimitFor(maxPayloadBytes);
  const fromEnv = envNumber(env, 'EVENTDBX_MAX_BUFFERED_BODY_BYTES', maxBufferedBodyBytes);
  const given = fromEnv ?? f.max_buffered_body_bytes;
  if (given === undefined) return Math.max(DEFAULT_MAX_BUFFERED_BODY_BYTES, bodyLimit);
  if (given < bodyLimit)
    throw err('EDBX_ERR_CONFIG_INVALID', {
      path: fromEnv === undefined ? file : 'environment EVENTDBX_MAX_BUFFERED_BODY_BYTES',
      reason: `max_buffered_body_bytes ${given} is below the largest request body taken (${bodyLimit} bytes: 4 × max_payload_bytes, at least 1 MiB); use at least ${bodyLimit}`,
    });
  return given;
}

/** Load the effective configuration: file values overridden by environment variables. */
export async function loadConfig(explicit?: string, env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  const file = configPath(explicit, env);
  const stored = await readConfigFile(file);
  const f = stored ?? {};
  const base = path.dirname(file);
  // Unlike the other variables, an empty one is not taken for unset: `EVENTDBX_DATA_DIR="$DIR"` with
  // DIR unset would otherwise point `destroy` (or `start`) at the configured store without a word.
  if (env.EVENTDBX_DATA_DIR === '')
    throw err('EDBX_ERR_CONFIG_INVALID', {
      path: 'environment EVENTDBX_DATA_DIR',
      reason: 'it is set but empty; give it a path, or unset it to use the configured data dir',
    });
  const dataDir = env.EVENTDBX_DATA_DIR || f.data_dir || DEFAULT_DATA_DIR;
  const maxPayloadBytes =
    envNumber(env, 'EVENTDBX_MAX_PAYLOAD_BYTES', z.number().int().min(1024)) ??
    f.max_payload_bytes ??
    DEFAULT_MAX_PAYLOAD_BYTES;
  return {
    path: file,
    exists: stored !== undefined,
    port: envNumber(env, 'EVENTDBX_PORT', port) ?? f.port ?? DEFAULT_PORT,
    dataDir: path.resolve(env.EVENTDBX_DATA_DIR ? process.cwd() : base, dataDir),
    masterKey: env.EVENTDBX_MASTER_KEY || f.master_key,
    dek: env.EVENTDBX_DEK || f.dek,
    memoryThreshold:
      envNumber(env, 'EVENTDBX_MEMORY_THRESHOLD', z.number().int().min(1)) ??
      f.memory_threshold ??
      DEFAULT_MEMORY_THRESHOLD,
    maxPayloadBytes,
    maxStateBytes:
      envNumber(env, 'EVENTDBX_MAX_STATE_BYTES', z.number().int().min(1024)) ??
      f.max_state_bytes ??
      DEFAULT_MAX_STATE_BYTES,
    verifyThreads:
      envNumber(env, 'EVENTDBX_VERIFY_THREADS', z.number().int().min(0).max(MAX_VERIFY_THREADS)) ??
      f.verify_threads ??
      defaultVerifyThreads(),
    maxConnections:
      envNumber(env, 'EVENTDBX_MAX_CONNECTIONS', maxConnections) ??
      f.max_connections ??
      DEFAULT_MAX_CONNECTIONS,
    maxStreamsPerToken:
      envNumber(env, 'EVENTDBX_MAX_STREAMS_PER_TOKEN', maxStreamsPerToken) ??
      f.max_streams_per_token ??
      DEFAULT_MAX_STREAMS_PER_TOKEN,
    streamHeartbeatMs:
      envNumber(env, 'EVENTDBX_STREAM_HEARTBEAT_MS', streamHeartbeatMs, 'milliseconds') ??
      DEFAULT_STREAM_HEARTBEAT_MS,
    dataDirCheckMs:
      envNumber(env, 'EVENTDBX_DATA_DIR_CHECK_MS', dataDirCheckMs, 'milliseconds') ??
      DEFAULT_DATA_DIR_CHECK_MS,
    progressIntervalMs:
      envNumber(env, 'EVENTDBX_PROGRESS_INTERVAL_MS', progressIntervalMs, 'milliseconds') ??
      DEFAULT_PROGRESS_INTERVAL_MS,
    maxBufferedBodyBytes: bufferedBodyBytes(env, f, file, maxPayloadBytes),
    restrict: envRestrict(env) ?? f.restrict ?? 'true',
    file: f,
  };
}

/** The temporary file `writeConfigFile` writes `file` through (beside it, named after this process). */
const tempFor = (file: string, pid = process.pid): string =>
  path.join(path.dirname(file), `.${path.basename(file)}.${pid}.tmp`);

const writeFailed = (file: string, e: unknown) =>
  isEventDbxError(e) ? e : err('EDBX_ERR_CONFIG_WRITE', { path: file, reason: (e as Error).message }, e);

/**
 * A new temporary file (owner-only), one left by a killed process of this PID removed first: created
 * with O_EXCL and never through a link (qa-pen #3), since it is about to hold keys, and is renamed.
 */
async function createTemp(tmp: string) {
  await fs.rm(tmp, { force: true });
  return openNoFollow(tmp, 'create');
}

/** Remove temporary files of `file` left by `config` processes that were killed mid-write (they hold keys). */
async function removeStaleTemps(file: string): Promise<void> {
  const prefix = `.${path.basename(file)}.`;
  const names = await fs.readdir(path.dirname(file)).catch(() => [] as string[]);
  for (const name of names) {
    const pid = name.startsWith(prefix) && name.endsWith('.tmp') ? name.slice(prefix.length, -4) : '';
    if (!/^[0-9]+$/.test(pid) || Number(pid) === process.pid || alive(Number(pid))) continue;
    await fs.rm(path.join(path.dirname(file), name), { force: true }).catch(() => undefined);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A config file written beside its place, not yet in it (`prepareConfigFile`). */
export interface PreparedConfig {
  /** Put it in place (rename, then sync the directory): needs no space on the disk. */
  commit(): Promise<void>;
  /** Remove it (it may hold keys): nothing changes. */
  discard(): Promise<void>;
}

/**
 * Write the new content of the config file `file` whole to a temporary file beside it (mode 0600,
 * synced), to be renamed over it by `commit`. Done before a change touches the store, so that a file
 * that cannot be written (no permission, an immutable file, a full disk) changes nothing: only the
 * rename is left, which needs no space. Throws EDBX_ERR_CONFIG_WRITE, leaving no temporary file.
 */
export async function prepareConfigFile(file: string, values: ConfigFile): Promise<PreparedConfig> {
  // The callers check each value first; should one slip through, it is one coded line, never a dump.
  const checked = FileSchema.safeParse(values);
  if (!checked.success) {
    const issue = checked.error.issues[0]!;
    throw err('EDBX_ERR_CONFIG_INVALID', {
      path: file,
      reason: `not written: ${issue.path.join('.') || 'file'}: ${issue.message}`,
    });
  }
  const dir = path.dirname(file);
  const tmp = tempFor(file);
  const discard = () => fs.rm(tmp, { force: true }).catch(() => undefined);
  try {
    makeDir(dir);
    const handle = await createTemp(tmp);
    try {
      await handle.writeFile(JSON.stringify(checked.data, null, 2) + '\n');
      // By its descriptor: 0600 even under a stricter umask's 0400.
      await handle.chmod(0o600);
      await handle.sync();
    } finally {
      await handle.close();
    }
    // An immutable file cannot be renamed over, and says so to access(); a mode without write
    // permission does not stop the rename, so EACCES is no reason to refuse.
    await fs.access(file, constants.W_OK).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT' && e.code !== 'EACCES') throw e;
    });
  } catch (e) {
    await discard();
    throw writeFailed(file, e);
  }
  return {
    discard,
    async commit() {
      try {
        await fs.rename(tmp, file);
      } catch (e) {
        await discard();
        throw writeFailed(file, e);
      }
      try {
        const d = await fs.open(dir, 'r');
        try {
          await d.sync();
        } finally {
          await d.close();
        }
      } catch (e) {
        // Renamed: the file holds the new values, but the rename may not survive a power loss.
        throw err(
          'EDBX_ERR_CONFIG_WRITE',
          { path: file, reason: `written, not synced: ${(e as Error).message}`, written: true },
          e,
        );
      }
      await removeStaleTemps(file);
    },
  };
}

/**
 * Atomically write the config file with mode 0600 (temp file, fsync, rename, fsync the directory).
 * On failure the temp file (it may hold keys) is removed and the error is EDBX_ERR_CONFIG_WRITE.
 */
export async function writeConfigFile(file: string, values: ConfigFile): Promise<void> {
  await (await prepareConfigFile(file, values)).commit();
}

/** Mask a secret for display: never more than a hint of its length. */
export const mask = (secretValue: string | undefined): string => (secretValue ? '********' : '(not set)');

export function describeConfig(c: Config): Record<string, string | number> {
  return {
    config: c.path,
    port: c.port,
    data_dir: c.dataDir,
    master_key: mask(c.masterKey),
    dek: mask(c.dek),
    memory_threshold: c.memoryThreshold,
    max_payload_bytes: c.maxPayloadBytes,
    max_state_bytes: c.maxStateBytes,
    verify_threads: c.verifyThreads,
    max_connections: c.maxConnections,
    max_streams_per_token: c.maxStreamsPerToken,
    max_buffered_body_bytes: c.maxBufferedBodyBytes,
    restrict: c.restrict,
  };
}
