/** Types of the event store's public API. */
import type { EventRecord, IssuedBy, Payload } from '../core/event.js';
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

/** Who is writing, recorded in every event's `metadata.issued_by`. */
export interface WriteContext {
  readonly issuedBy: IssuedBy;
  /** The token used, by hash: checked and charged inside the write transaction (exact limits). */
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
  readonly created_by: IssuedBy;
  readonly updated_at: string;
  readonly updated_by: IssuedBy;
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
  readonly taken_by: IssuedBy;
  readonly comment?: string;
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
  readonly issued_by: IssuedBy;
  readonly staged_at: string;
}
