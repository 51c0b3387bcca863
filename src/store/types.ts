/** Types of the event store's public API. */
import type { EventIssuer, EventRecord, Payload } from '../core/event.js';
import type { ConsistencyProof, InclusionProof } from '../protocol/proofs.js';
import type { AggregateView as WireAggregateView } from '../protocol/records.js';

// Shapes the API serves are defined once, in the wire protocol.
export type { AggregateSummary, VerifyReport } from '../protocol/records.js';
export type InclusionProofView = InclusionProof;
export type ConsistencyProofView = ConsistencyProof;

/** An aggregate's state (the wire shape), optionally with its events (`--include-events`). */
export type AggregateView = WireAggregateView & { readonly events?: EventRecord[] };

export interface AppendRequest {
  readonly aggregate_type: string;
  readonly aggregate_id: string;
  readonly event_type: string;
  /** Field → string (numbers and booleans are accepted and stored as strings). */
  readonly payload: unknown;
  /** Optimistic concurrency: the version the aggregate must have now (0 = must not exist). */
  readonly expected_version?: number | undefined;
  /** Client id for idempotent retries: the same id and event returns the original record. */
  readonly event_id?: string | undefined;
}

/**
 * Who is writing, recorded in every event's `metadata.issued_by` (audit entries included): the person,
 * and the id of the token the write is made with (`issuerOf(token)` in core/tokens.ts). No `token` is
 * for writes made without one: the CLI on the host (group `local`) and embedded use.
 */
export interface WriteContext {
  readonly issuedBy: EventIssuer;
  /**
   * The token used, by hash: checked and charged inside the write transaction (exact limits). The
   * events then record that token's group, user and id, whatever `issuedBy` says. Token management
   * reads it to keep an expiring admin token from issuing or refreshing a token that outlives it.
   */
  readonly tokenHash?: string;
}

/** The stored per-aggregate metadata and state. */
export interface AggregateMeta {
  readonly aggregate_type: string;
  readonly aggregate_id: string;
  readonly version: number;
  readonly state: Payload;
  readonly merkle_root: string;
  /** Base64 of the encoded Merkle frontier (roots of the perfect subtrees). */
  readonly frontier: string;
  readonly archived: boolean;
  readonly created_at: string;
  readonly created_by: EventIssuer;
  readonly updated_at: string;
  readonly updated_by: EventIssuer;
  readonly last_snapshot_version: number;
}

export interface SnapshotRecord {
  readonly aggregate_type: string;
  readonly aggregate_id: string;
  readonly version: number;
  readonly state: Payload;
  readonly merkle_root: string;
  /** When the snapshot was taken. */
  readonly created_at: string;
  /** When the event at `version` was appended (the state's `updated_at`); absent in older snapshots. */
  readonly updated_at?: string;
  readonly taken_by: EventIssuer;
  readonly comment?: string;
}

/** A page of the log read through a filter (`EventStore.scanLog`). */
export interface LogScan {
  /** The events kept, in position order. */
  readonly records: EventRecord[];
  /** The position after the last one examined: where the next page starts. */
  readonly next: number;
}

export interface LedgerReport {
  readonly ok: boolean;
  readonly size: number;
  readonly root: string;
  readonly first_bad_position?: number;
  readonly reason?: string;
}

export interface StagedEvent {
  readonly seq: number;
  readonly request: AppendRequest;
  /** Who staged it: the events a commit appends record them (and their token, if they had one). */
  readonly issued_by: EventIssuer;
  readonly staged_at: string;
}
