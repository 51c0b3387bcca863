/**
 * A server started with schema enforcement other than the default is recorded in the audit log
 * (`server-started`), atomically, before it listens: `start --restrict=false` (or
 * `EVENTDBX_RESTRICT=false`) switches off every schema check, locked fields included, and events
 * written meanwhile look like any other. The entry says who started it (the host's OS user), in which
 * mode, where the mode came from and what the configuration says, so an auditor can see the window
 * in which the schemas did not apply, and who opened it (qa-schema #2).
 *
 * Only such starts: a start in mode `true` as configured records nothing (no entry for every
 * restart). Any other mode is recorded at each start, even when configured (`config --restrict
 * false` is audited itself, but the servers run with it are what an auditor needs to see).
 */
import type { IssuedBy } from '../core/event.js';
import type { RestrictMode } from '../core/schema.js';
import type { AuditAction, CommandRunPayload, ServerStartedPayload } from '../protocol/audit.js';
import { AUDIT_ID, AUDIT_TYPE, type EventStore } from './store.js';

export const SERVER_STARTED: AuditAction = 'server-started';
export const COMMAND_RUN: AuditAction = 'command-run';

/** Where a server's restriction mode came from, as `restart` says it too. */
export type RestrictSource = '--restrict' | 'environment EVENTDBX_RESTRICT' | 'configuration';

/** Where a mode no `--restrict` gave came from: `EVENTDBX_RESTRICT` when set, else the configuration. */
export const unflaggedSource = (env: NodeJS.ProcessEnv = process.env): RestrictSource =>
  env.EVENTDBX_RESTRICT ? 'environment EVENTDBX_RESTRICT' : 'configuration';

/** The restriction mode a server starts with. */
export interface StartMode {
  readonly restrict: RestrictMode;
  readonly source: RestrictSource;
  /** The configuration file's mode (`config --restrict`; `true` when it sets none). */
  readonly configured: RestrictMode;
}

/**
 * Whether a start in this mode is recorded: any mode other than `true`, or other than the configured
 * one (a `--restrict=true` over a configured `strict` loosens it).
 *
 * @example
 * startRecorded({ restrict: 'true', source: 'configuration', configured: 'true' }); // false
 * startRecorded({ restrict: 'false', source: '--restrict', configured: 'true' }); // true
 */
export const startRecorded = (m: StartMode): boolean => m.restrict !== 'true' || m.restrict !== m.configured;

/**
 * Record a server's start in the audit log when its mode is one to record (see startRecorded), in a
 * commit of its own. Answers the entry's payload, or undefined when nothing was recorded.
 */
export async function recordServerStart(
  store: EventStore,
  mode: StartMode,
  by: IssuedBy,
): Promise<ServerStartedPayload | undefined> {
  if (!startRecorded(mode)) return undefined;
  const details = payloadOf(mode);
  await recordAlone(store, by, SERVER_STARTED, { ...details });
  return details;
}

/**
 * The same for a CLI command that writes events on a store it opened itself (no server runs): a
 * `command-run` entry naming the command, in a commit of its own before the command writes.
 */
export async function recordCommandMode(
  store: EventStore,
  mode: StartMode,
  command: string,
  by: IssuedBy,
): Promise<CommandRunPayload | undefined> {
  if (!startRecorded(mode)) return undefined;
  const details: CommandRunPayload = { command, ...payloadOf(mode) };
  await recordAlone(store, by, COMMAND_RUN, { ...details });
  return details;
}

const payloadOf = (mode: StartMode): ServerStartedPayload => ({
  restrict: mode.restrict,
  source: mode.source,
  configured: mode.configured,
});

/** One audit entry in a commit of its own. */
const recordAlone = (store: EventStore, by: IssuedBy, action: AuditAction, details: Record<string, string>) =>
  store.exclusive([[AUDIT_TYPE, AUDIT_ID]], async (tx) => {
    store.audit(tx, { issuedBy: by }, action, details);
  });
