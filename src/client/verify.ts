/**
 * Client-side verification, trusting nothing the server says beyond what it can prove: an event's leaf
 * hash is recomputed from the event itself, RFC 6962 proofs are checked with the RFC 9162 verifiers,
 * and checkpoints are checked against a pinned Ed25519 key. Every field of a response is validated
 * (exact hex, safe integers, the index, size and roots that were asked for) before it is used, so a
 * falsified proof is rejected rather than misread (cf. GHSA-672p-m5jq-mrh8). Failures throw
 * `EventDbxVerificationError`.
 */
import { parseCheckpoint, rawPublicKey, verifyCheckpointSignature } from '../core/checkpoint.js';
import { leafHash } from '../core/merkle/hash.js';
import { verifyConsistency, verifyInclusion } from '../core/merkle/verify.js';
import { CHECKPOINT_ORIGIN, type EventRecord, leafBytes } from '../protocol/index.js';
import { EventDbxVerificationError, type VerificationErrorCode } from './errors.js';

const HEX64 = /^[0-9a-f]{64}$/;

type Obj = Record<string, unknown>;

function fail(code: VerificationErrorCode, message: string, cause?: unknown): never {
  throw new EventDbxVerificationError(code, message, cause);
}

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function obj(v: unknown, what: string): Obj {
  return isObj(v) ? v : fail('EDBX_ERR_PROOF_INVALID', `${what} is not an object`);
}

function hex(v: unknown, what: string): string {
  return typeof v === 'string' && HEX64.test(v)
    ? v
    : fail('EDBX_ERR_PROOF_INVALID', `${what} is not a 64-digit lowercase hex hash`);
}

function count(v: unknown, what: string): number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
    ? v
    : fail('EDBX_ERR_PROOF_INVALID', `${what} is not a whole number`);
}

function path(v: unknown, what: string): Buffer[] {
  if (!Array.isArray(v)) fail('EDBX_ERR_PROOF_INVALID', `${what} is not an array`);
  return v.map((h, i) => Buffer.from(hex(h, `${what}[${i}]`), 'hex'));
}

function expect(ok: boolean, message: string): void {
  if (!ok) fail('EDBX_ERR_PROOF_INVALID', message);
}

/** A tree head: size and hex root. */
export interface TreeHead {
  readonly size: number;
  readonly root: string;
}

/** What `verifyEvent` proved. */
export interface VerifiedEvent {
  readonly event: EventRecord;
  /** Recomputed from the event. */
  readonly leaf_hash: string;
  /** The aggregate tree the event was proven to be in. */
  readonly tree: TreeHead;
}

export interface EventProofInput {
  readonly type: string;
  readonly id: string;
  readonly version: number;
  /** The event as served. */
  readonly event: unknown;
  /** Inclusion proof of the event in `tree`. */
  readonly proof: unknown;
  /** The aggregate tree the event must be in (the current aggregate, or a root you trust). */
  readonly tree: TreeHead;
  /** Consistency proof from `version` to `tree.size`; needed when the event is not the newest. */
  readonly consistency?: unknown;
}

/**
 * Check that `event` is version `version` of `type/id`, that its leaf hash (recomputed from its
 * content) is in the aggregate tree `tree`, and that its `merkle_root` is the root of that tree's
 * first `version` leaves.
 *
 * @example
 * checkEventProof({ type: 'patient', id: 'p-1', version: 2, event, proof, tree: { size: 5, root }, consistency });
 */
export function checkEventProof(i: EventProofInput): VerifiedEvent {
  const e = obj(i.event, 'the event');
  const p = obj(i.proof, 'the inclusion proof');
  expect(
    e.aggregate_type === i.type && e.aggregate_id === i.id && e.version === i.version,
    `the server sent a different event than ${i.type}/${i.id} version ${i.version}`,
  );
  const size = count(i.tree.size, 'the tree size');
  const root = hex(i.tree.root, 'the tree root');
  expect(i.version >= 1 && i.version <= size, `version ${i.version} is not in a tree of ${size} events`);
  const leaf = contentLeaf(e);
  const leafHex = leaf.toString('hex');
  checkInclusionAnswer(p, leaf, i.version - 1, size, root, {
    otherRoot: 'the proof is against a different root',
    noPath: `the inclusion proof does not lead to the root of ${i.type}/${i.id} at ${size} events`,
  });
  const eventRoot = hex(e.merkle_root, 'the event merkle_root');
  if (i.version === size) {
    expect(eventRoot === root, 'the event merkle_root is not the root of the tree it ends');
  } else {
    checkConsistency(
      i.consistency,
      { size: i.version, root: eventRoot },
      { size, root },
      'EDBX_ERR_PROOF_INVALID',
    );
  }
  return { event: e as unknown as EventRecord, leaf_hash: leafHex, tree: { size, root } };
}

/** The event's leaf hash, recomputed from its content; it must be the event's own `hash`. */
function contentLeaf(e: Obj): Buffer {
  let leaf: Buffer;
  try {
    leaf = leafHash(leafBytes(e as unknown as EventRecord));
  } catch (err) {
    return fail('EDBX_ERR_PROOF_INVALID', 'the event cannot be canonicalized', err);
  }
  expect(
    hex(e.hash, 'the event hash') === leaf.toString('hex'),
    'the event does not hash to its `hash` (its content was changed)',
  );
  return leaf;
}

/**
 * An inclusion proof answer (`leaf_hash`, `leaf_index`, `tree_size`, `root`, `audit_path`) must be
 * for `leaf` at `index` of the tree of `size` leaves and root `root` the caller trusts, and lead there;
 * `say` words the two failures that name the tree.
 */
function checkInclusionAnswer(
  p: Obj,
  leaf: Buffer,
  index: number,
  size: number,
  root: string,
  say: { readonly otherRoot: string; readonly noPath: string },
): void {
  expect(
    hex(p.leaf_hash, 'leaf_hash') === leaf.toString('hex'),
    'the proof is for a different leaf than this event',
  );
  expect(count(p.leaf_index, 'leaf_index') === index, `leaf_index is not ${index}`);
  expect(count(p.tree_size, 'tree_size') === size, `tree_size is not ${size}`);
  expect(hex(p.root, 'the proof root') === root, say.otherRoot);
  expect(
    verifyInclusion(leaf, index, size, path(p.audit_path, 'audit_path'), Buffer.from(root, 'hex')),
    say.noPath,
  );
}

/** What `checkLedgerInclusion` proved. */
export interface VerifiedLedgerEvent {
  readonly event: EventRecord;
  /** Recomputed from the event. */
  readonly leaf_hash: string;
  /** The event's index in the ledger tree: its `position` − 1. */
  readonly leaf_index: number;
  /** The ledger tree (a checkpoint) the event was proven to be in. */
  readonly checkpoint: TreeHead;
}

/** What `verifyLedgerInclusion` proved, and whether that includes the checkpoint's signature. */
export interface VerifiedLedgerInclusion extends VerifiedLedgerEvent {
  /**
   * True when this call verified the checkpoint's signed `note` with the pinned key: the event is then
   * proven authentic. False when the checkpoint was a bare `{ size, root }`, taken as given: the proof
   * is then only as good as where that size and root came from.
   */
  readonly checkpoint_verified: boolean;
}

/**
 * Check that `event`, whose leaf hash is recomputed from its content, is leaf `position − 1` of the
 * store-wide ledger tree `checkpoint` (its size and root, from a checkpoint whose signature you
 * verified: `audit()`'s `current`), by the `GET /v1/ledger/proof` answer `proof`.
 *
 * @example
 * checkLedgerInclusion({ event, proof, checkpoint: { size: 120, root } });
 */
export function checkLedgerInclusion(i: {
  readonly event: unknown;
  readonly proof: unknown;
  readonly checkpoint: TreeHead;
}): VerifiedLedgerEvent {
  const e = obj(i.event, 'the event');
  const p = obj(i.proof, 'the ledger proof');
  const size = count(i.checkpoint.size, 'the checkpoint size');
  const root = hex(i.checkpoint.root, 'the checkpoint root');
  const position = count(e.position, 'the event position');
  expect(position >= 1 && position <= size, `position ${position} is not in a checkpoint of ${size} events`);
  const leaf = contentLeaf(e);
  const leafHex = leaf.toString('hex');
  const index = position - 1;
  checkInclusionAnswer(p, leaf, index, size, root, {
    otherRoot: "the proof is against a different root than the checkpoint's",
    noPath: `the ledger proof does not lead from position ${position} to the checkpoint's root of ${size} events`,
  });
  return {
    event: e as unknown as EventRecord,
    leaf_hash: leafHex,
    leaf_index: index,
    checkpoint: { size, root },
  };
}

/**
 * Check an RFC 6962 consistency proof that `older` is a prefix of `newer`, using only the sizes and
 * roots the caller trusts (the proof's own copies must agree with them).
 */
export function checkConsistency(
  proof: unknown,
  older: TreeHead,
  newer: TreeHead,
  code: VerificationErrorCode = 'EDBX_ERR_CHECKPOINT_MISMATCH',
): void {
  const bad = (why: string): never =>
    fail(
      code,
      `history was rewritten: the tree of ${older.size} events is not a prefix of the tree of ${newer.size} (${why})`,
    );
  let c: Obj;
  let hashes: Buffer[];
  try {
    c = obj(proof, 'the consistency proof');
    if (count(c.first, 'first') !== older.size) bad(`the proof starts at ${String(c.first)}`);
    if (count(c.second, 'second') !== newer.size) bad(`the proof ends at ${String(c.second)}`);
    if (hex(c.first_root, 'first_root') !== older.root)
      bad('the server has a different root at the older size');
    if (hex(c.second_root, 'second_root') !== newer.root)
      bad('the server has a different root at the newer size');
    hashes = path(c.consistency_path, 'consistency_path');
  } catch (e) {
    if (e instanceof EventDbxVerificationError && e.code !== code) return fail(code, e.message, e);
    throw e;
  }
  const ok = verifyConsistency(
    older.size,
    newer.size,
    Buffer.from(older.root, 'hex'),
    Buffer.from(newer.root, 'hex'),
    hashes,
  );
  if (!ok) bad('the consistency proof does not verify');
}

/** A checkpoint whose signature was verified: only fields of the signed note. */
export interface VerifiedCheckpoint {
  readonly origin: string;
  readonly size: number;
  readonly root: string;
  readonly timestamp: string;
  readonly key_name: string;
  /** Base64 of key id ‖ signature, as on the note's signature line. */
  readonly signature: string;
  readonly note: string;
}

/** Whether two PEM public keys are the same Ed25519 key (formatting aside). */
export function sameKey(a: string, b: string): boolean {
  try {
    return rawPublicKey(a).equals(rawPublicKey(b));
  } catch {
    return false;
  }
}

/**
 * Verify a signed note with the pinned key. `view`, when given, is the `GET /v1/checkpoint` body: its
 * unsigned copies of the note's fields must agree with the note, and the key it advertises must be the
 * pinned one (a changed key must be re-pinned deliberately).
 */
export function checkCheckpoint(
  note: unknown,
  publicKeyPem: string,
  view?: unknown,
  origin: string = CHECKPOINT_ORIGIN,
): VerifiedCheckpoint {
  if (typeof note !== 'string')
    fail('EDBX_ERR_INVALID_CHECKPOINT', 'the checkpoint has no signed note (its `note`)');
  let c: ReturnType<typeof parseCheckpoint>;
  try {
    c = parseCheckpoint(note);
  } catch (e) {
    return fail('EDBX_ERR_INVALID_CHECKPOINT', `not a signed note: ${(e as Error).message}`, e);
  }
  let signed: boolean;
  try {
    signed = verifyCheckpointSignature(note, publicKeyPem);
  } catch (e) {
    return fail('EDBX_ERR_CHECKPOINT_SIGNATURE', 'the pinned public key is not a usable Ed25519 PEM', e);
  }
  if (!signed)
    fail('EDBX_ERR_CHECKPOINT_SIGNATURE', 'the checkpoint signature does not verify with the pinned key');
  if (c.origin !== origin)
    fail(
      'EDBX_ERR_INVALID_CHECKPOINT',
      `the checkpoint is for ${JSON.stringify(c.origin)}, not ${JSON.stringify(origin)}`,
    );
  if (!Number.isSafeInteger(c.size)) fail('EDBX_ERR_INVALID_CHECKPOINT', 'the tree size is out of range');
  const verified: VerifiedCheckpoint = {
    origin: c.origin,
    size: c.size,
    root: c.root,
    timestamp: c.timestamp,
    key_name: c.key_name,
    signature: c.signature,
    note,
  };
  if (view !== undefined) checkCopies(view, verified, publicKeyPem, false);
  return verified;
}

/**
 * Verify a checkpoint as a caller holds it (`audit()`'s `current`, the `.checkpoint` of `eventdbx
 * checkpoint --json`, `getCheckpoint()`'s answer): its `note` with the pinned key, as `checkCheckpoint`
 * does, and every copy of the note's fields it carries (`size`, `root`, `signature`, …) must agree with
 * the note; fields it does not carry are taken from the note.
 *
 * @example
 * const { size, root } = checkCheckpointObject(JSON.parse(saved).checkpoint, pinnedPem);
 */
export function checkCheckpointObject(checkpoint: unknown, publicKeyPem: string): VerifiedCheckpoint {
  const c = isObj(checkpoint)
    ? checkpoint
    : fail('EDBX_ERR_INVALID_CHECKPOINT', 'the checkpoint is not an object');
  const verified = checkCheckpoint(c.note, publicKeyPem);
  checkCopies(c, verified, publicKeyPem, true);
  return verified;
}

/**
 * The unsigned copies of the note's fields in `view` must agree with the verified note (with
 * `onlyPresent`, the fields `view` has), and the key it advertises, if any, must be the pinned one.
 */
function checkCopies(view: unknown, c: VerifiedCheckpoint, publicKeyPem: string, onlyPresent: boolean): void {
  const v = isObj(view) ? view : fail('EDBX_ERR_INVALID_CHECKPOINT', 'the checkpoint is not an object');
  for (const k of ['origin', 'size', 'root', 'timestamp', 'key_name', 'signature'] as const) {
    if (onlyPresent && v[k] === undefined) continue;
    if (v[k] !== c[k])
      fail('EDBX_ERR_INVALID_CHECKPOINT', `the checkpoint's ${k} disagrees with its signed note`);
  }
  if (
    v.public_key !== undefined &&
    (typeof v.public_key !== 'string' || !sameKey(v.public_key, publicKeyPem))
  )
    fail('EDBX_ERR_CHECKPOINT_SIGNATURE', 'the server advertises a different public key than the pinned one');
}

/**
 * Check that `latest` extends `trusted`: never shorter, the same root at the same size, and otherwise a
 * valid consistency proof between the two signed roots.
 */
export function checkAdvance(trusted: TreeHead | undefined, latest: TreeHead, proof: unknown): void {
  if (!trusted || trusted.size === 0) return;
  if (latest.size < trusted.size)
    fail(
      'EDBX_ERR_CHECKPOINT_MISMATCH',
      `the server's checkpoint has ${latest.size} events but a trusted one had ${trusted.size}: history was truncated`,
    );
  if (latest.size === trusted.size) {
    if (latest.root !== trusted.root)
      fail(
        'EDBX_ERR_CHECKPOINT_MISMATCH',
        `the history of ${trusted.size} events was rewritten (different root)`,
      );
    return;
  }
  checkConsistency(proof, trusted, latest);
}
