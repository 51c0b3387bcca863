/** Response envelopes of the REST API. */
import type { AggregateSummary, EventRecord, SchemaDefinition, TokenView } from './records.js';

/** `GET /v1/aggregates`. `next_cursor` is null on the last page. */
export interface AggregatePage {
  readonly aggregates: readonly AggregateSummary[];
  readonly next_cursor: string | null;
}

/** `GET …/events` (oldest first). `next_cursor` is null on the last page. */
export interface EventPage {
  readonly events: readonly EventRecord[];
  readonly next_cursor: string | null;
}

/** `GET …/events/recent` (newest first). */
export interface RecentEvents {
  readonly events: readonly EventRecord[];
}

/** `POST /v1/transactions`: the records in request order. */
export interface TransactionResult {
  readonly events: readonly EventRecord[];
}

/** `GET /v1/schemas`: current versions, by aggregate type. `next_cursor` is null on the last page. */
export interface SchemaList {
  readonly schemas: readonly SchemaDefinition[];
  readonly next_cursor: string | null;
}

/**
 * `GET /v1/tokens` (admin), in a fixed order that is not the order of creation. `next_cursor` is null
 * on the last page.
 */
export interface TokenPage {
  readonly tokens: readonly TokenView[];
  readonly next_cursor: string | null;
}

/** `GET /v1/schemas/{aggregate}/history`: every version, oldest first. */
export interface SchemaHistory {
  readonly aggregate: string;
  readonly versions: readonly SchemaDefinition[];
}

/** An audit log entry withheld from a token limited to some aggregates: enough to recompute the tree. */
export interface WithheldAuditEntry {
  readonly version: number;
  readonly position: number;
  /** The entry's leaf hash (hex), as its `hash` would be. */
  readonly hash: string;
}

/**
 * `GET /v1/audit` (a token issued with `--audit`, or admin): audit log entries, oldest first.
 * `next_cursor` is null on the last page. A token with aggregate scopes gets the entries about them,
 * the tokens that can reach them and the store as a whole; the others are in `withheld` (always empty
 * for a token without scopes). `skip` and `take` count both.
 */
export interface AuditPage {
  readonly entries: readonly EventRecord[];
  readonly withheld: readonly WithheldAuditEntry[];
  readonly next_cursor: string | null;
}
