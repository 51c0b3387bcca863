/**
 * Plugin types: the stored configuration of a plugin, the sink interface every destination implements,
 * and the failure a sink reports. Pure: no I/O here.
 */
import { type EventDbxError, err } from '../core/errors.js';
import type { EventIssuer, EventRecord, Payload } from '../core/event.js';

import type {
  DeadLetter,
  DeliveryError,
  DeliveryOptions,
  Mappings,
  PluginKind,
  RetryOutcome,
} from '../protocol/plugins.js';

// The shapes the REST API shows live in the wire protocol, shared with the client SDK.
export {
  PLUGIN_KINDS,
  type DeadLetter,
  type DeliveryError,
  type DeliveryOptions,
  type Mappings,
  type OnFailure,
  type PluginKind,
  type RetryOutcome,
  type TypeMap,
} from '../protocol/plugins.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
/** What a log plugin's template may hold. */
export const TEMPLATE_PLACEHOLDERS = ['aggregate', 'id', 'event', 'version', 'position', 'event_id'] as const;
/** The kinds whose `timeout_ms` means something (every one but the log plugin, which waits on nothing). */
export const TIMEOUT_KINDS: readonly PluginKind[] = ['postgres', 'sqlite', 'csv', 'tcp', 'http', 'json'];
/**
 * The kinds whose drivers have no timeout of their own: the SQLite thread and file system calls can
 * hang (a stuck disk, a hung network mount). The host gives each of their calls `timeout_ms` (see
 * watchdog.ts); the network sinks time out each connection, request or statement themselves.
 */
export const HOST_TIMED_KINDS: readonly PluginKind[] = ['sqlite', 'csv', 'json'];
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface PostgresSettings {
  /** Connection string (URL or key=value); may hold a password: never log it, mask it when shown. */
  readonly connection: string;
}
export interface SqliteSettings {
  readonly path: string;
}
export interface CsvSettings {
  readonly output_dir: string;
}
export interface TcpSettings {
  readonly host: string;
  readonly port: number;
}
export interface HttpSettings {
  readonly endpoint: string;
  /** Extra request headers; values may be secrets (masked when shown). */
  readonly headers: Readonly<Record<string, string>>;
}
export interface JsonSettings {
  readonly path: string;
  readonly pretty: boolean;
}
export interface LogSettings {
  readonly level: LogLevel;
  readonly template?: string;
}

export interface SettingsByKind {
  postgres: PostgresSettings;
  sqlite: SqliteSettings;
  csv: CsvSettings;
  tcp: TcpSettings;
  http: HttpSettings;
  json: JsonSettings;
  log: LogSettings;
}

export const DEFAULT_DELIVERY: DeliveryOptions = {
  max_attempts: 10,
  backoff_ms: 500,
  backoff_max_ms: 60_000,
  on_failure: 'dead-letter',
  timeout_ms: 10_000,
};

/** A plugin as stored (sealed) in the store. Plugins are named after their kind: one per kind. */
export type PluginConfig = {
  [K in PluginKind]: {
    readonly name: string;
    readonly kind: K;
    readonly enabled: boolean;
    readonly settings: SettingsByKind[K];
    readonly delivery: DeliveryOptions;
    readonly created_at: string;
    readonly updated_at: string;
    /**
     * Random, new with every change, never shown: it makes the record's `config_digest` in the audit
     * log (see store/audit-plugins.ts) useless for guessing the secrets in it. Absent in records
     * written before digests existed.
     */
    readonly salt?: string;
  };
}[PluginKind];

/** The durable delivery state of a plugin (sealed: the last error may quote event data). */
export interface CursorRecord {
  /** Lowest position not yet acknowledged by the sink (1 = from the start). */
  readonly position: number;
  readonly last_error?: DeliveryError;
  /** `plugin retry` ran while no server was running: retry the dead letters when the host starts. */
  readonly retry_requested?: boolean;
}

/** A dead letter as stored: what `plugin dead-letters` shows, plus the host's own bookkeeping. */
export interface StoredDeadLetter extends DeadLetter {
  /**
   * A delivery of it by `plugin retry` began and did not end in its removal (the server crashed, or
   * the sink failed, maybe after its bytes reached the destination): it may already be delivered.
   * Set durably before each retry's delivery; kept until the letter is removed.
   */
  readonly outcome_unknown?: true;
}

export const EMPTY_MAPPINGS: Mappings = { base: {}, postgres: {}, sqlite: {} };

/** The aggregate as of an event: what state sinks (SQL, CSV) write. */
export interface AggregateRow {
  readonly state: Payload;
  readonly created_at: string;
  readonly created_by: EventIssuer;
}

export interface DeliveryItem {
  readonly record: EventRecord;
  /** Present for sinks that declare `needsState`. */
  readonly row?: AggregateRow;
  /**
   * A dead letter delivered again (`plugin retry`), out of position order: a file sink writes it even
   * though its file already holds later events (it skips only events redelivered in order).
   */
  readonly retry?: boolean;
  /**
   * With `retry`: an earlier retry of this dead letter may have delivered it (its outcome was never
   * known). A file sink looks in its file for it and writes it only if absent; the other sinks are
   * idempotent or at-least-once and ignore this. Rare (a crash or a failed retry), so the file is read
   * only then.
   */
  readonly maybeDelivered?: boolean;
}

/** Where the log sink writes (the server's logger). Levels a logger lacks are treated as disabled. */
export type PluginLogger = {
  [L in 'info' | 'warn' | 'error']: (obj: object, msg?: string) => void;
} & {
  [L in 'trace' | 'debug']?: (obj: object, msg?: string) => void;
};

/**
 * An event a destination says it holds, as it recorded it: by position (and the event's hash, when
 * the destination keeps it), or by aggregate, version and event id (CSV rows). The host compares it
 * with the store's before delivering (see divergence.ts).
 */
export type HeldEvent =
  | { readonly position: number; readonly hash?: string }
  | {
      readonly aggregate_type: string;
      readonly aggregate_id: string;
      readonly version: number;
      readonly event_id: string;
    };

/**
 * A destination. `deliver` is all-or-nothing from the host's point of view unless it throws a
 * `DeliveryFailure` saying how many leading items were delivered. It must be safe to deliver the same
 * item again (at-least-once): the durable cursor trails delivery, so after a crash the last events
 * arrive again, in order.
 */
export interface Sink {
  /** Items carry the aggregate state at the event (`row`). */
  readonly needsState: boolean;
  /** Most events handed to one `deliver` call. */
  readonly batchSize: number;
  deliver(items: readonly DeliveryItem[]): Promise<void>;
  close(): Promise<void>;
  /**
   * Let go of the destination at once, without waiting for anything in flight: called when `close`
   * did not finish in time (a stuck thread, a query that never returns, a hung file system), so that
   * stopping a plugin never waits for ever. Stops what can be stopped (the SQLite thread, the
   * PostgreSQL connections); what cannot (a file system call) is left to end on its own. The sink
   * opens afresh if used again. Says what it let go of, for the log. Sinks whose `close` cannot hang
   * leave it out.
   */
  abandon?(): string;
  /**
   * Sinks that keep what they delivered (SQL tables, files): the newest events the destination holds,
   * read when it opens. An event the store does not have means the destination is ahead of the store
   * (restored from a backup) or fed by another store: the host then delivers nothing.
   */
  held?(): Promise<HeldEvent[]>;
  /**
   * Remove what the plugin wrote (`plugin replay --rebuild`): its tables and bookkeeping, or its files
   * moved aside under `suffix`. `types` are the store's aggregate types. Says what was done.
   */
  clear?(types: readonly string[], suffix: string): Promise<string[]>;
}

/**
 * A sink's failure, carrying a registry error. `permanent`: retrying cannot help (a value that cannot be
 * cast, a constraint, a destination limit): the event is dead-lettered at once. `unreachable`: the
 * destination could not be reached, which says nothing about the event: retried until it is back, the
 * failure costs no event an attempt (see `unreachableFailure`). `delivered`: how many
 * leading items reached the sink before the failure (undefined = unknown). Which item failed is known
 * only when the sink names it: a permanent failure with `delivered` set, or one marked `isolated`.
 * Otherwise (a batch written as a whole: a transaction, a file write) the host isolates it by
 * delivering the rest one at a time before it dead-letters anything, so one refused event never takes
 * its neighbours with it.
 */
export class DeliveryFailure extends Error {
  constructor(
    readonly error: EventDbxError,
    readonly permanent: boolean,
    readonly delivered: number | undefined,
    /**
     * The items after `delivered` may have reached the destination all the same (a file sink whose
     * write began, then failed or could not be synced): a dead letter made of one is marked so.
     */
    readonly maybeWritten = false,
    /** The item at `delivered` failed on its own: the sink sent it alone (HTTP, one request each). */
    readonly isolated = false,
    readonly unreachable = false,
  ) {
    super(error.message);
    this.name = 'DeliveryFailure';
  }
}

/**
 * The destination answered with an error (or a write failed): retried with backoff, then dead-lettered.
 * `reason` is logged and kept as a dead letter's reason: it never quotes a payload value (nor a
 * destination's answer).
 */
export const transientFailure = (
  plugin: string,
  reason: string,
  delivered?: number,
  maybeWritten = false,
): DeliveryFailure =>
  new DeliveryFailure(err('EDBX_ERR_PLUGIN_DELIVERY', { plugin, reason }), false, delivered, maybeWritten);

/**
 * The destination failed the item at `delivered`, which the sink sent on its own (HTTP: one request per
 * event): retried with backoff, then dead-lettered; no other item is blamed for it. `reason`: as above.
 */
export const itemFailure = (plugin: string, reason: string, delivered: number): DeliveryFailure =>
  new DeliveryFailure(err('EDBX_ERR_PLUGIN_DELIVERY', { plugin, reason }), false, delivered, false, true);

/**
 * The destination could not be reached: refused, reset or timed out, a name that does not resolve, a
 * server starting up or shutting down, a gateway saying so. Each sink decides what that covers (its
 * `classify`); only it knows whether its destination took part. Retried with backoff, at most
 * `backoff_max_ms` apart, for as long as the outage lasts, and never counted toward `max_attempts`: an
 * outage is not the event's fault, so it dead-letters nothing and no one has to `plugin retry` after it.
 * `reason`: as above.
 */
export const unreachableFailure = (plugin: string, reason: string, delivered = 0): DeliveryFailure =>
  new DeliveryFailure(
    err('EDBX_ERR_PLUGIN_UNREACHABLE', { plugin, reason }),
    false,
    delivered,
    false,
    false,
    true,
  );

/** The destination refused the data itself: dead-lettered without retries. `reason`: as above. */
export const rejectedFailure = (
  plugin: string,
  record: EventRecord,
  reason: string,
  delivered?: number,
): DeliveryFailure =>
  new DeliveryFailure(
    err('EDBX_ERR_PLUGIN_REJECTED', {
      plugin,
      aggregate_type: record.aggregate_type,
      aggregate_id: record.aggregate_id,
      version: record.version,
      reason,
    }),
    true,
    delivered,
  );

/** A readable reason from anything a driver throws (Node's AggregateError has an empty message). */
export function reasonOf(e: unknown): string {
  if (e instanceof AggregateError && e.errors.length > 0)
    return [...new Set(e.errors.map(reasonOf))].join('; ');
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    if (e.message) return e.message;
    return code ?? e.name;
  }
  return String(e);
}

/**
 * The error codes of a network path that failed: nothing answered, the connection broke or timed out,
 * the name did not resolve, the route is down. They say nothing about what was being sent.
 */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * Whether `e` is a failure to reach a destination over the network (see NETWORK_CODES; TLS refusing
 * the connection too), as Node reports it. Node's AggregateError (every address of a name refused)
 * counts when all of its errors do.
 */
export function isNetworkError(e: unknown): boolean {
  if (e instanceof AggregateError && e.errors.length > 0) return e.errors.every(isNetworkError);
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  return NETWORK_CODES.has(code) || /^ERR_(TLS|SSL)_|CERT|SELF_SIGNED|UNABLE_TO_/.test(code);
}

/** What a running plugin is doing. */
export type LoopState =
  | 'starting'
  | 'delivering'
  | 'idle'
  | 'retrying'
  /** The destination cannot be reached: retrying until it is back (no attempts counted). */
  | 'unreachable'
  | 'blocked'
  /** The destination holds events the store does not have (EDBX_ERR_PLUGIN_DIVERGED): not delivering. */
  | 'failed'
  | 'stopped';

/** Live delivery figures of a running plugin (counters since the server started). */
export interface LoopStats {
  readonly state: LoopState;
  /** Lowest position not yet acknowledged. */
  readonly cursor: number;
  /** Failed attempts of the event at the cursor (those that could not reach the destination are not). */
  readonly attempts: number;
  readonly delivered: number;
  readonly retries: number;
  readonly dead_lettered: number;
  readonly last_error?: CursorRecord['last_error'];
  readonly last_delivered_at?: string;
  readonly next_retry_at?: string;
}

/** The running delivery host as the admin operations see it (see registry.ts). */
export interface HostHandle {
  /** Stop the plugins' loops, run `change` (which writes config/cursors), then restart them. */
  reconfigure<T>(names: readonly string[], change: () => Promise<T>): Promise<T>;
  stats(name: string): LoopStats | undefined;
  /** Retry the dead letters now; undefined when the plugin is not running (disabled). */
  retry(name: string): Promise<RetryOutcome> | undefined;
  /**
   * Why the plugin does not deliver: not started, as the audit log does not vouch for its
   * configuration, or its destination diverged (EDBX_ERR_PLUGIN_DIVERGED).
   */
  failure(name: string): DeliveryError | undefined;
  /** The same, as the error a command on that plugin (`plugin retry`) is refused with. */
  refusal(name: string): EventDbxError | undefined;
}
