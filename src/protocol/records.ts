/**
 * The records the REST API serves, exactly as they appear on the wire. Shared by the server and the
 * client SDK; pure types. The core and the store use these definitions for what they serve.
 */
import type { ServerErrorCode } from './problem.js';

/** Field → value. Values are always strings once stored (numbers and booleans are stringified). */
export type Payload = Readonly<Record<string, string>>;

/** A person: the `{group, user}` of the token used, or `local/<OS user>` for the CLI on the host. */
export interface IssuedBy {
  readonly group: string;
  readonly user: string;
}

/**
 * Who wrote an event: the person, and the public id of the token the write was made with (`edbx_` and
 * six characters, as `token list`, the audit log and errors name it; never the secret or its hash).
 * The id joins the event to the audit log's `token-generated` entry of that token, which says who
 * issued it. Without `token`: a write made on the host by the CLI without a token (group `local`), by
 * a program that embeds the store, or an event written before token ids were recorded.
 *
 * @example
 * { group: 'doctors', user: 'dr-house', token: 'edbx_Q2x9fA' }
 */
export interface EventIssuer extends IssuedBy {
  readonly token?: string;
}

export interface EventMetadata {
  /** The client's `event_id` when it sent one, otherwise a server-generated UUID. */
  readonly event_id: string;
  /** RFC 3339 commit time. */
  readonly created_at: string;
  readonly issued_by: EventIssuer;
}

/**
 * One committed event.
 *
 * @example
 * { aggregate_type: 'patient', aggregate_id: 'p-001', event_type: 'patient-updated',
 *   payload: { status: 'inactive' }, metadata: { … }, version: 5, position: 812,
 *   hash: 'cafe…', merkle_root: 'dead…' }
 */
export interface EventRecord {
  readonly aggregate_type: string;
  readonly aggregate_id: string;
  readonly event_type: string;
  readonly payload: Payload;
  readonly metadata: EventMetadata;
  /** 1-based version within the aggregate. */
  readonly version: number;
  /** Store-wide, gap-free, 1-based commit order (the stream's event id). */
  readonly position: number;
  /** Hex RFC 6962 leaf hash of the canonical record without `hash` and `merkle_root`. */
  readonly hash: string;
  /** Hex root of the aggregate's Merkle tree after this event. */
  readonly merkle_root: string;
}

/** One row of `GET /v1/aggregates`. */
export interface AggregateSummary {
  readonly aggregate_type: string;
  readonly aggregate_id: string;
  readonly version: number;
  readonly merkle_root: string;
  readonly archived: boolean;
  readonly updated_at: string;
}

/** `GET /v1/aggregates/{type}/{id}[?version=n]`: the state folded from the events up to `version`. */
export interface AggregateView {
  readonly aggregate_type: string;
  readonly aggregate_id: string;
  readonly version: number;
  readonly state: Payload;
  readonly merkle_root: string;
  readonly archived: boolean;
  readonly created_at: string;
  readonly updated_at: string;
}

/** `GET /v1/aggregates/{type}/{id}/verify`: the server recomputed the tree from the stored events. */
export interface VerifyReport {
  readonly aggregate_type: string;
  readonly aggregate_id: string;
  readonly ok: boolean;
  readonly version: number;
  readonly merkle_root: string;
  /** First version whose record, hash or root does not match (absent when ok). */
  readonly first_bad_version?: number;
  readonly reason?: string;
}

/** The records stored beside the events (schemas, tokens, archive states, thresholds) against the audit log. */
export interface AuditStateReport {
  readonly ok: boolean;
  /** One line per disagreement, naming the record and what the log says. */
  readonly problems: readonly string[];
}

/**
 * `GET /v1/audit/verify` and `eventdbx audit verify --json`: the audit log's own tree (`report`), then,
 * when it verifies, the records it vouches for (`state`). `ok` is true when both check out.
 */
export interface AuditVerification {
  readonly ok: boolean;
  readonly report: VerifyReport;
  readonly state?: AuditStateReport;
}

/**
 * `GET /health` (no token needed): 200 with `status: "ok"`; 200 with `status: "degraded"` while the
 * server serves, writes included, but an operator must act (a read met damaged files, or its
 * acknowledged-head file cannot be written); or 503 with `status: "failing"` once a write failed (the
 * server then refuses every write until it is restarted). A stopping server answers 503 with a problem
 * document (`EDBX_ERR_SHUTTING_DOWN`) instead.
 */
export type Health = HealthOk | HealthDegraded | HealthFailing;

interface HealthFacts {
  readonly version: string;
  /** Schema restriction mode: `true`, `strict` or `false`. */
  readonly restrict: string;
  readonly uptime_seconds: number;
  /** Events in the store (the ledger size). */
  readonly events: number;
  /** The store's storage layout (its format version; README "Upgrading"). Absent from older servers. */
  readonly layout?: number;
}

/** `GET /health` of a server that writes. */
export interface HealthOk extends HealthFacts {
  readonly status: 'ok';
}

/**
 * `GET /health` (200) of a server that serves, writes included, but needs an operator: the `code` says
 * what (`EDBX_ERR_STORE_DAMAGED`: restore a backup; `EDBX_ERR_ACKNOWLEDGED_HEAD`: make the file
 * writable), the `detail` why.
 */
export interface HealthDegraded extends HealthFacts {
  readonly status: 'degraded';
  readonly code: ServerErrorCode;
  readonly detail: string;
}

/** `GET /health` (503) of a server whose writes failed: fix the cause, then `eventdbx restart`. */
export interface HealthFailing extends HealthFacts {
  readonly status: 'failing';
  /** The code of the failed write, e.g. `EDBX_ERR_STORE_IO`. */
  readonly code: ServerErrorCode;
  /** Why, and what to do. */
  readonly detail: string;
}

/** One version of a schema, as every `/v1/schemas` endpoint returns it. */
export interface SchemaDefinition {
  readonly aggregate: string;
  /** Bumped by every change; earlier versions are kept (see the history endpoint). */
  readonly version: number;
  /** Event type → the fields it may set (empty = any field). */
  readonly events: Readonly<Record<string, { readonly fields: readonly string[] }>>;
  /** True: no event may be appended to this aggregate type. */
  readonly locked: boolean;
  /** Fields no event may set. */
  readonly locked_fields: readonly string[];
  /** Automatic snapshot every n events (0 = off). */
  readonly snapshot_threshold: number;
  readonly created_at: string;
  readonly updated_at: string;
  readonly updated_by: IssuedBy;
  /** What this version changed. */
  readonly change: string;
}

/** An access token as listed by `GET /v1/tokens` (never the secret, never its hash). */
export interface TokenView {
  readonly id: string;
  readonly group: string;
  readonly user: string;
  readonly status: 'active' | 'expired' | 'revoked' | 'exhausted';
  readonly expires_at: string | null;
  readonly keep_alive: boolean;
  readonly limit: number | null;
  readonly remaining: number | null;
  readonly read_only: boolean;
  readonly scopes: readonly string[];
  /** May read the audit log (`--audit`): with scopes, the entries about what they cover. */
  readonly audit: boolean;
  readonly created_at: string;
  readonly revoked_at: string | null;
}

/** `POST /v1/tokens`: the new token, with its secret (shown this once). */
export interface IssuedToken extends TokenView {
  readonly token: string;
}
