/**
 * RFC 6962 / RFC 9162 §2.1.1 hashing: SHA-256 with domain separation between leaves and interior
 * nodes, so a leaf can never be passed off as an interior node (second-preimage defence).
 */
import { createHash, hash } from 'node:crypto';

/**
 * SHA-256 of `input` as a Buffer. On Node 20, `crypto.hash(…, 'buffer')` costs about 2.2 µs for a
 * 65-byte input while `'binary'` (latin1) output costs 0.6 µs; turning the latin1 string back into bytes is
 * exact (one char per byte) and the pair takes about half the time of the buffer output.
 */
export const sha256 = (input: Uint8Array): Buffer => Buffer.from(hash('sha256', input, 'binary'), 'latin1');

/** Size in bytes of every hash in the tree (SHA-256). */
export const HASH_BYTES = 32;

/**
 * The hash of one leaf: `SHA-256(0x00 || data)`.
 *
 * @example
 * leafHash(Buffer.alloc(0)).toString('hex'); // '6e340b9c…afa01d'
 */
export function leafHash(data: Uint8Array): Buffer {
  // One-shot hashing (crypto.hash) is markedly cheaper than a Hash object for small inputs.
  const input = Buffer.allocUnsafe(data.length + 1);
  input[0] = 0x00;
  input.set(data, 1);
  return sha256(input);
}

/**
 * The hash of an interior node: `SHA-256(0x01 || left || right)`.
 *
 * @example
 * const root2 = nodeHash(leafHash(a), leafHash(b));
 */
const NODE_SCRATCH = Buffer.alloc(1 + 2 * HASH_BYTES);

export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  // crypto.hash is synchronous, so one scratch buffer serves every call of the usual 32+32 shape.
  const fits = left.length === HASH_BYTES && right.length === HASH_BYTES;
  const input = fits ? NODE_SCRATCH : Buffer.allocUnsafe(1 + left.length + right.length);
  input[0] = 0x01;
  input.set(left, 1);
  input.set(right, 1 + left.length);
  return sha256(input);
}

/**
 * The root of the empty tree: `SHA-256("")` (RFC 9162 §2.1.1). Shared instance: do not mutate it.
 */
export const EMPTY_ROOT: Buffer = createHash('sha256').digest();

/**
 * Merkle Tree Hash of a list of leaf hashes, straight from the RFC's recursive definition: split at the
 * largest power of two strictly below n, never duplicate a node. O(n) hashing and O(log n) recursion;
 * meant as the reference for tests and small inputs, the frontier is what the store uses.
 *
 * @example
 * rootOfLeafHashes([leafHash(a), leafHash(b), leafHash(c)]);
 */
export function rootOfLeafHashes(leaves: readonly Buffer[]): Buffer {
  return leaves.length === 0 ? Buffer.from(EMPTY_ROOT) : mth(leaves, 0, leaves.length);
}

function mth(leaves: readonly Buffer[], start: number, end: number): Buffer {
  const n = end - start;
  if (n === 1) return leaves[start] as Buffer;
  let k = 1;
  while (k * 2 < n) k *= 2;
  return nodeHash(mth(leaves, start, start + k), mth(leaves, start + k, end));
}
