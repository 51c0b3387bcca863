/**
 * The files a server keeps in its data dir, and the settings read before it starts: what the CLI's
 * `start`, `stop`, `status` and `restart` need without loading the server itself (fastify, metrics),
 * which only the server process runs.
 */
import { err, shown } from '../core/errors.js';

export { PID_FILE } from './control.js';

/** The daemon's log, in its data dir. */
export const LOG_FILE = 'eventdbx.log';

/** Beside the PID file: the PID file of a server that ended without a clean stop, found stale. */
export const UNCLEAN_SUFFIX = '.unclean';

/** The start options `restart` tells apart by where they came from. */
export type StartFlag = 'port' | 'restrict';

export interface PidInfo {
  readonly pid: number;
  readonly port: number;
  readonly started_at: string;
  readonly restrict: string;
  readonly version: string;
  readonly data_dir: string;
  /**
   * The address the server listens on (`EVENTDBX_HOST` resolved: `127.0.0.1`, `0.0.0.0`, …), where
   * `status` asks it for /health. Absent from the PID file of a server of an earlier version, which
   * listened on the default.
   */
  readonly host?: string;
  /**
   * The start options given on the command line (`port`, `restrict`): `restart` keeps these and
   * reads the others from the configuration again. Absent from the PID file of a server of an
   * earlier version: `restart` then keeps both, as it used to.
   */
  readonly given?: readonly StartFlag[];
  /** The server process's start time (`processFacts`), so that a reused PID is not taken for it. */
  readonly process_start?: string;
  /** Set when the server began to stop (it finishes what is in flight, then exits). */
  readonly stopping_since?: string;
}

/** pino's levels, as `EVENTDBX_LOG_LEVEL` takes them. */
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** `EVENTDBX_LOG_LEVEL` (default `info`), checked before anything starts. */
export function logLevel(env: NodeJS.ProcessEnv = process.env): string {
  const raw = env.EVENTDBX_LOG_LEVEL;
  if (raw === undefined || raw === '') return 'info';
  if ((LOG_LEVELS as readonly string[]).includes(raw)) return raw;
  throw err('EDBX_ERR_CONFIG_INVALID', {
    path: 'environment EVENTDBX_LOG_LEVEL',
    reason: `${shown(raw)} is not a log level; use one of ${LOG_LEVELS.join(', ')}`,
  });
}
