/** Merkle proofs and the signed checkpoint, as served. Hashes are lowercase hex SHA-256. */

/**
 * RFC 6962 inclusion proof: `GET …/events/{version}/proof[?tree_size=n]` (leaf index = version - 1,
 * in the aggregate's tree) or `GET /v1/ledger/proof?position=p[&tree_size=n]` (leaf index =
 * position - 1, in the store-wide ledger tree; `leaf_hash` is the event's `hash`). Check it against a
 * root obtained elsewhere (an event's `merkle_root`, a signed checkpoint), never against `root` alone.
 */
export interface InclusionProof {
  readonly leaf_index: number;
  readonly tree_size: number;
  readonly leaf_hash: string;
  readonly audit_path: readonly string[];
  readonly root: string;
}

/**
 * RFC 6962 consistency proof between two sizes of a tree: `GET …/consistency?from&to` (an
 * aggregate) or `GET /v1/ledger/consistency?from&to` (the store-wide ledger).
 */
export interface ConsistencyProof {
  readonly first: number;
  readonly second: number;
  readonly first_root: string;
  readonly second_root: string;
  readonly consistency_path: readonly string[];
}

/**
 * `GET /v1/checkpoint`: the latest signed checkpoint of the ledger, a C2SP signed note
 * (https://c2sp.org/tlog-checkpoint) signed with Ed25519. Only `note` is signed; the other fields
 * repeat what it says, and `public_key` is what the server claims (pin your own copy).
 */
export interface CheckpointView {
  readonly origin: string;
  readonly size: number;
  /** Hex root of the ledger tree of `size` events. */
  readonly root: string;
  readonly timestamp: string;
  /** Base64 of key id ‖ signature, as on the note's signature line. */
  readonly signature: string;
  readonly key_name: string;
  /** The full signed note text. */
  readonly note: string;
  /** PEM (SPKI) of the server's Ed25519 key. */
  readonly public_key: string;
}

/** The origin line of EventDBX checkpoints. */
export const CHECKPOINT_ORIGIN = 'eventdbx/ledger';
