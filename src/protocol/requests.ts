/** Request bodies and query parameters of the REST API. */

/** A payload as sent: numbers and booleans are accepted and stored as strings. */
export type PayloadInput = Readonly<Record<string, string | number | boolean>>;

/** `POST /v1/aggregates/{type}/{id}/events`. */
export interface AppendBody {
  readonly event_type: string;
  readonly payload: PayloadInput;
  /** Optimistic concurrency: the version the aggregate must have now (0 = it must not exist). */
  readonly expected_version?: number | undefined;
  /** Client id (1-128 characters) that makes the append idempotent: a retry returns the original. */
  readonly event_id?: string | undefined;
}

/** One event of `POST /v1/transactions`. */
export interface TransactionEvent extends AppendBody {
  readonly aggregate_type: string;
  readonly aggregate_id: string;
}

/** `POST /v1/transactions`: append to several aggregates atomically (all or none, 1-1000 events). */
export interface TransactionBody {
  readonly events: readonly TransactionEvent[];
}

/** Paging of every list: `take` 1-1000 (default 100), `skip`, or the opaque `next_cursor`. */
export interface PageQuery {
  readonly take?: number | undefined;
  readonly skip?: number | undefined;
  readonly cursor?: string | undefined;
}

export interface ListAggregatesQuery extends PageQuery {
  /** Only aggregates of this type. */
  readonly type?: string | undefined;
}

/** `GET /v1/audit` (admin). */
export interface AuditQuery extends PageQuery {
  /** Only entries written at or after this date (ISO 8601, e.g. `2026-11-01` or `2026-11-01T10:00:00Z`). */
  readonly since?: string | undefined;
  /**
   * Only entries at or after this ledger position, by commit order (after a backup: its `events` + 1,
   * what it does not hold, whatever the clock said).
   */
  readonly from_position?: number | undefined;
}

/** `GET /v1/events/stream`. */
export interface StreamQuery {
  /** First position to deliver (inclusive); absent = only events committed after connecting. */
  readonly from?: number | undefined;
  /** Only events of this aggregate type. */
  readonly aggregate?: string | undefined;
}

/** `POST /v1/schemas` (admin), like `schema create`. */
export interface SchemaCreateBody {
  readonly aggregate: string;
  readonly events: readonly string[];
  readonly snapshot_threshold?: number | undefined;
}

/**
 * `PATCH /v1/schemas/{aggregate}` (admin), like `schema alter`: `event` with `add`/`remove` edits that
 * event's fields; `lock` without `field` locks the aggregate type; `field` with `lock` locks one field.
 */
export interface SchemaAlterBody {
  readonly event?: string | undefined;
  readonly snapshot_threshold?: number | undefined;
  readonly lock?: boolean | undefined;
  readonly field?: string | undefined;
  readonly add?: readonly string[] | undefined;
  readonly remove?: readonly string[] | undefined;
}

/** `POST /v1/tokens` (group admin): a token for one person. */
export interface TokenCreateBody {
  readonly group: string;
  readonly user: string;
  /** Lifetime in seconds. */
  readonly expiration?: number | undefined;
  /** Number of writes allowed. */
  readonly limit?: number | undefined;
  readonly keep_alive?: boolean | undefined;
  readonly read_only?: boolean | undefined;
  /** `type` or `type/id` the token is limited to. */
  readonly aggregates?: readonly string[] | undefined;
  /**
   * The token may read the audit log (`GET /v1/audit`, `/v1/audit/verify`) and prove its entries in the
   * ledger, without reading every aggregate: with `aggregates`, only the entries about them.
   */
  readonly audit?: boolean | undefined;
}
