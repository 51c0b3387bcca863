/**
 * `client.audit()`: advance a trusted checkpoint only when the server proves that its current history
 * extends it. Signature first (pinned key), then size and roots, then an RFC 6962 consistency proof
 * between the two signed roots; the trusted checkpoint is saved only after all of that passed.
 */
import type { CheckpointView, ConsistencyProof } from '../protocol/index.js';
import { EventDbxConfigError, EventDbxVerificationError } from './errors.js';
import { whole } from './options.js';
import type { CheckpointStore, TrustedCheckpoint } from './trust.js';
import {
  type TreeHead,
  type VerifiedCheckpoint,
  checkAdvance,
  checkCheckpoint,
  checkCheckpointObject,
  sameKey,
} from './verify.js';

export interface AuditOptions {
  /**
   * With no key pinned (neither the client's `publicKey` nor one saved with a trusted checkpoint),
   * trust the key the server advertises on this first audit and pin it. Off by default: pin the
   * output of `eventdbx checkpoint public-key` instead.
   */
  readonly trustOnFirstUse?: boolean | undefined;
  readonly signal?: AbortSignal | undefined;
}

export interface AuditResult {
  /** The checkpoint trusted before this audit (null on the first audit). */
  readonly previous: TreeHead | null;
  /** The server's latest checkpoint, now trusted. */
  readonly current: TreeHead & { readonly timestamp: string; readonly note: string };
  /** The consistency proof that was checked (empty when none was needed). */
  readonly consistency_path: readonly string[];
}

export interface AuditDeps {
  readonly store: CheckpointStore;
  readonly publicKey: string | undefined;
  /** The `GET /v1/checkpoint` answer, as it came (a `CheckpointView` unless the server lies). */
  readonly checkpoint: () => Promise<unknown>;
  /** A ledger consistency proof, as it came. */
  readonly consistency: (from: number, to: number) => Promise<unknown>;
  readonly now: () => Date;
}

/**
 * The key checkpoints are verified with: the pinned `publicKey`, else the one saved with the trusted
 * checkpoint (undefined when neither is). When both are there they must be the same key.
 */
function verifyingKey(pinned: string | undefined, saved: TrustedCheckpoint | undefined): string | undefined {
  if (saved && pinned && !sameKey(saved.public_key, pinned))
    throw new EventDbxVerificationError(
      'EDBX_ERR_TRUST_STORE',
      'the trusted checkpoint was verified with a different key than the pinned `publicKey`',
    );
  return pinned ?? saved?.public_key;
}

export async function runAudit(d: AuditDeps, o: AuditOptions = {}): Promise<AuditResult> {
  const saved = await d.store.load();
  let key = verifyingKey(d.publicKey, saved);
  const answer = await d.checkpoint();
  const view = (typeof answer === 'object' && answer !== null ? answer : {}) as Partial<CheckpointView>;
  if (key === undefined) {
    if (!o.trustOnFirstUse || typeof view.public_key !== 'string') {
      throw new EventDbxConfigError(
        'no public key is pinned: pass `publicKey` (the output of `eventdbx checkpoint public-key`) or audit({ trustOnFirstUse: true })',
      );
    }
    key = view.public_key;
  }
  let trusted: VerifiedCheckpoint | undefined;
  if (saved) {
    try {
      trusted = checkCheckpoint(saved.note, key);
    } catch (e) {
      throw new EventDbxVerificationError(
        'EDBX_ERR_TRUST_STORE',
        `the trusted checkpoint no longer verifies: ${(e as Error).message}`,
        e,
      );
    }
  }
  const latest = checkCheckpoint(view.note, key, answer);
  let path: readonly string[] = [];
  let proof: unknown;
  if (trusted && trusted.size > 0 && latest.size > trusted.size) {
    proof = await d.consistency(trusted.size, latest.size);
  }
  checkAdvance(trusted, latest, proof);
  if (proof) path = (proof as ConsistencyProof).consistency_path;
  if (!trusted || latest.size > trusted.size || saved?.public_key !== key) {
    await d.store.save({ note: latest.note, public_key: key, verified_at: d.now().toISOString() });
  }
  return {
    previous: trusted ? { size: trusted.size, root: trusted.root } : null,
    current: { size: latest.size, root: latest.root, timestamp: latest.timestamp, note: latest.note },
    consistency_path: [...path],
  };
}

/**
 * The tree head of a checkpoint given to `verifyLedgerInclusion`. One that carries a signed `note` or a
 * `signature` is verified with the key `audit()` uses (the pinned `publicKey`, else the one saved with
 * the trusted checkpoint): with neither, that is an `EventDbxConfigError`, never a silent pass. A bare
 * `{ size, root }` is taken as given and said to be (`verified: false`).
 */
export async function ledgerCheckpoint(
  checkpoint: unknown,
  d: { readonly publicKey: string | undefined; readonly store: CheckpointStore | undefined },
): Promise<{ readonly head: TreeHead; readonly verified: boolean }> {
  const usage = "audit()'s `current`, or the `.checkpoint` of `eventdbx checkpoint --json`";
  if (typeof checkpoint !== 'object' || checkpoint === null)
    throw new EventDbxConfigError(`the checkpoint must be an object such as ${usage}`);
  const c = checkpoint as Record<string, unknown>;
  if (c.size === undefined && typeof c.checkpoint === 'object' && c.checkpoint !== null)
    throw new EventDbxConfigError(
      'the checkpoint has no size: this looks like the whole `eventdbx checkpoint --json` document; pass its `.checkpoint`',
    );
  if (c.note === undefined && c.signature === undefined)
    return {
      head: { size: whole(c.size as number, 'the checkpoint size', 0), root: c.root as string },
      verified: false,
    };
  const key = verifyingKey(d.publicKey, await d.store?.load());
  if (key === undefined)
    throw new EventDbxConfigError(
      'the checkpoint is signed, but no public key is pinned to verify it: pass `publicKey` (the output of `eventdbx checkpoint public-key`), or pass only its { size, root } to take them as given',
    );
  const v = checkCheckpointObject(c, key);
  return { head: { size: v.size, root: v.root }, verified: true };
}
