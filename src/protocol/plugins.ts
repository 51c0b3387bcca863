/**
 * The plugin administration part of the wire protocol (admin tokens only): what `GET /v1/plugins`,
 * `GET /v1/plugins/status`, `GET /v1/plugins/{name}/dead-letters` and the replay and retry actions
 * answer. The server's plugin code (src/plugins) builds these; the client SDK reads them.
 */

export const PLUGIN_KINDS = ['postgres', 'sqlite', 'csv', 'tcp', 'http', 'json', 'log'] as const;
export type PluginKind = (typeof PLUGIN_KINDS)[number];

/** What happens to an event that still fails after `max_attempts`. */
export type OnFailure = 'dead-letter' | 'block';

export interface DeliveryOptions {
  /**
   * Attempts per event before it is dead-lettered (or the plugin reports itself blocked). Only attempts
   * that reached the destination count: while it cannot be reached (EDBX_ERR_PLUGIN_UNREACHABLE) the
   * plugin retries without counting, however long that lasts.
   */
  readonly max_attempts: number;
  /** First retry delay; doubles per attempt (with jitter) up to `backoff_max_ms`. */
  readonly backoff_ms: number;
  readonly backoff_max_ms: number;
  readonly on_failure: OnFailure;
  /**
   * Per request / connection / statement timeout of the network sinks; for the SQLite and file sinks,
   * how long one write may take before the plugin reports it stuck (EDBX_ERR_PLUGIN_UNREACHABLE).
   */
  readonly timeout_ms: number;
}

/** The last delivery failure of a plugin. */
export interface DeliveryError {
  readonly code: string;
  readonly message: string;
  readonly at: string;
}

/** An event that failed every attempt, kept so it can be inspected and retried. */
export interface DeadLetter {
  readonly plugin: string;
  readonly position: number;
  readonly aggregate_type: string;
  readonly aggregate_id: string;
  readonly version: number;
  readonly event_type: string;
  readonly event_id: string;
  readonly code: string;
  readonly reason: string;
  readonly attempts: number;
  readonly dead_lettered_at: string;
}

/** Column type overrides recorded by `plugin map`: aggregate type → field → datatype. */
export type TypeMap = Readonly<Record<string, Readonly<Record<string, string>>>>;

export interface Mappings {
  /** Base types (all SQL sinks). */
  readonly base: TypeMap;
  /** Per-plugin overrides (`--plugin postgres`). */
  readonly postgres: TypeMap;
  readonly sqlite: TypeMap;
}

/** A plugin as shown to people and API clients: secrets masked. */
export interface PluginView {
  readonly name: string;
  readonly kind: PluginKind;
  readonly enabled: boolean;
  readonly target: string;
  readonly settings: Record<string, unknown>;
  /** `timeout_ms` for every plugin but `log`, which waits on nothing. */
  readonly delivery: Omit<DeliveryOptions, 'timeout_ms'> & { readonly timeout_ms?: number };
  readonly created_at: string;
  readonly updated_at: string;
  /**
   * Why the running server does not deliver this plugin: its stored configuration is not the one the
   * audit log vouches for (`EDBX_ERR_INTEGRITY`), or its destination holds events the store does not
   * have (`EDBX_ERR_PLUGIN_DIVERGED`). Absent otherwise, and when no server runs.
   */
  readonly failure?: DeliveryError;
}

export interface PluginStatus {
  readonly name: string;
  readonly kind: PluginKind;
  readonly enabled: boolean;
  readonly target: string;
  /**
   * `disabled`, `not running` (no server), `failed` (not started, or its destination holds events
   * the store does not have, EDBX_ERR_PLUGIN_DIVERGED: `last_error` says why and what to run), or
   * what the running loop does.
   */
  readonly state: string;
  /** Lowest position not yet acknowledged. */
  readonly cursor: number;
  /** Last position in the store. */
  readonly head: number;
  /**
   * Positions committed but not yet acknowledged by the sink, system events (audit entries, which are
   * skipped) included: an upper bound of the events still to deliver.
   */
  readonly lag: number;
  readonly attempts: number;
  readonly delivered: number;
  readonly retries: number;
  readonly dead_letters: number;
  readonly last_error?: DeliveryError;
  readonly last_delivered_at?: string;
  readonly next_retry_at?: string;
}

/** `GET /v1/plugins`. */
export interface PluginList {
  readonly plugins: PluginView[];
  readonly mappings: Mappings;
}

/** `GET /v1/plugins/status`; `running` is false when no delivery host runs. */
export interface PluginStatusList {
  readonly plugins: PluginStatus[];
  readonly running: boolean;
}

/** `GET /v1/plugins/{name}/dead-letters`: the oldest first, `total` counting them all. */
export interface DeadLetterPage {
  readonly plugin: string;
  readonly total: number;
  readonly dead_letters: DeadLetter[];
  /** The `from` of the next page, null after the last (absent from a server before 1.1 paged them). */
  readonly next_from?: number | null;
}

/** `POST /v1/plugins/{name}/replay`. */
export interface ReplayResult {
  readonly plugin: string;
  readonly from: number;
  readonly head: number;
  readonly cleared_dead_letters: number;
  /** With `rebuild`: what was cleared first, one line per table dropped or file moved aside. */
  readonly rebuilt?: string[];
  readonly running: boolean;
}

/** Outcome of a retry on a running plugin. */
export interface RetryOutcome {
  readonly retried: number;
  readonly delivered: number;
  readonly failed: number;
}

/** `POST /v1/plugins/{name}/retry`: the outcome when the plugin runs, else how many were queued. */
export interface RetryResult {
  readonly plugin: string;
  readonly running: boolean;
  readonly queued: number;
  readonly outcome?: RetryOutcome;
}
