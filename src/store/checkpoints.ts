/**
 * Checkpoints of the store-wide ledger: sign the current head; verify that the current history extends
 * a saved checkpoint. Verification does not trust stored hashes: it re-verifies every aggregate and
 * recomputes the ledger from its entries, then checks an RFC 6962 consistency proof from the saved
 * size and root to the current head.
 */
import {
  type Checkpoint,
  parseCheckpoint,
  signCheckpoint,
  verifyCheckpointSignature,
} from '../core/checkpoint.js';
import { err } from '../core/errors.js';
import { verifyConsistency } from '../core/merkle/index.js';
import { checkedLedgerHead, ledgerConsistencyProof } from './proofs.js';
import type { EventStore } from './store.js';
import { verifyAll } from './verify.js';

export interface CheckpointSigner {
  readonly store: EventStore;
  readonly signingKeyPem: string;
  readonly publicKeyPem: string;
}

export const CHECKPOINT_ORIGIN = 'eventdbx/ledger';
export const CHECKPOINT_KEY_NAME = 'eventdbx';

/**
 * Sign the current ledger head, once it is checked against the ledger entries: EDBX_ERR_INTEGRITY,
 * and nothing signed, when they disagree.
 */
export async function currentCheckpoint(s: CheckpointSigner): Promise<Checkpoint> {
  return signCheckpoint(
    await checkedLedgerHead(s.store),
    CHECKPOINT_ORIGIN,
    CHECKPOINT_KEY_NAME,
    s.signingKeyPem,
    s.publicKeyPem,
    s.store.env.now(),
  );
}

export interface CheckpointVerification {
  readonly ok: true;
  readonly from: { size: number; root: string };
  readonly to: { size: number; root: string };
  readonly consistency_path: readonly string[];
}

/**
 * Prove the current history extends `note`; throws EDBX_ERR_CHECKPOINT_MISMATCH saying why not. The
 * note's signature is checked with `pinnedKeyPem` when given (a key an auditor saved earlier), else
 * with the store's own key, which whoever replaced the keyring would control.
 */
export async function verifyFromCheckpoint(
  s: CheckpointSigner,
  note: string,
  pinnedKeyPem?: string,
): Promise<CheckpointVerification> {
  const saved = parseCheckpoint(note);
  const fail = (reason: string) => err('EDBX_ERR_CHECKPOINT_MISMATCH', { reason });
  if (!verifyCheckpointSignature(note, pinnedKeyPem ?? s.publicKeyPem)) {
    const key = pinnedKeyPem === undefined ? 'the store public key' : 'the pinned public key (--public-key)';
    throw fail(`the signature does not verify with ${key}`);
  }
  const all = await verifyAll(s.store);
  if (!all.ok) {
    const first = all.failures[0];
    throw fail(
      first
        ? `${first.aggregate_type}/${first.aggregate_id} version ${first.first_bad_version}: ${first.reason}`
        : `ledger: ${all.ledger.reason}`,
    );
  }
  // The ledger as verified, at one point between two commits (appends go on meanwhile).
  const head = { size: all.ledger.size, root: all.ledger.root };
  if (saved.size > head.size)
    throw fail(
      `the saved checkpoint has ${saved.size} events but the store only ${head.size}: history was truncated`,
    );
  if (saved.size === 0)
    return { ok: true, from: { size: 0, root: saved.root }, to: head, consistency_path: [] };
  const proof = await ledgerConsistencyProof(s.store, saved.size, head.size);
  const ok = verifyConsistency(
    saved.size,
    head.size,
    Buffer.from(saved.root, 'hex'),
    Buffer.from(proof.second_root, 'hex'),
    proof.consistency_path.map((h) => Buffer.from(h, 'hex')),
  );
  if (!ok || proof.second_root !== head.root)
    throw fail(`the history up to ${saved.size} events was rewritten`);
  return {
    ok: true,
    from: { size: saved.size, root: saved.root },
    to: head,
    consistency_path: proof.consistency_path,
  };
}
