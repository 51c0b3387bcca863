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

/** `GET /v1/audit` (admin): audit log entries, oldest first. `next_cursor` is null on the last page. */
export interface AuditPage {
  readonly entries: readonly EventRecord[];
  readonly next_cursor: string | null;
}
