/**
 * The compact state of an append-only Merkle tree: the roots of the perfect subtrees that cover the
 * leaves so far, one per set bit of the size (the "frontier" or "compact range"). It is all that is
 * needed to append a leaf and to compute the root, in O(log n) space and hashing.
 */
import { err } from '../errors.js';
import { hash } from 'node:crypto';
import { EMPTY_ROOT, HASH_BYTES, nodeHash } from './hash.js';

/**
 * A tree of `size` leaves, summarised by the roots of its perfect subtrees, largest (leftmost) first.
 * A size of 0b1101 has three nodes covering leaves [0,8), [8,12) and [12,13).
 */
export interface Frontier {
  readonly size: number;
  readonly nodes: readonly Buffer[];
}

/** The frontier of the empty tree. */
export const emptyFrontier: Frontier = Object.freeze({
  size: 0,
  nodes: Object.freeze([]) as readonly Buffer[],
});

/**
 * A perfect subtree covering leaves `[index * 2^level, (index + 1) * 2^level)`. Level 0 is a leaf hash.
 * Perfect nodes never change once complete, which is why a store can persist them on append.
 */
export interface CompletedNode {
  readonly level: number;
  readonly index: number;
  readonly hash: Buffer;
}

/**
 * Append one leaf hash. Returns the new frontier (the input is not mutated) and every perfect node the
 * append completed, starting with the leaf itself at level 0: a store that saves them all holds every
 * perfect node of the tree, which is exactly what proof generation reads.
 *
 * @example
 * let f = emptyFrontier;
 * for (const data of inputs) ({ frontier: f } = appendLeaf(f, leafHash(data)));
 * frontierRoot(f); // same as rootOfLeafHashes(inputs.map(leafHash))
 */
export function appendLeaf(f: Frontier, leaf: Buffer): { frontier: Frontier; completed: CompletedNode[] } {
  if (leaf.length !== HASH_BYTES) {
    throw err('EDBX_ERR_INTERNAL', {
      reason: `merkle leaf hash must be ${HASH_BYTES} bytes, got ${leaf.length}`,
    });
  }
  if (f.size >= Number.MAX_SAFE_INTEGER) {
    throw err('EDBX_ERR_INTERNAL', { reason: `merkle tree is full at ${f.size} leaves` });
  }
  const nodes = f.nodes.slice();
  const completed: CompletedNode[] = [{ level: 0, index: f.size, hash: leaf }];
  let carry = leaf;
  let level = 0;
  // Each trailing 1 bit of the old size is a perfect subtree of the same height as `carry`, sitting
  // just left of it: merge them, like carrying in binary addition. Division, not `>>`: sizes pass 2^31.
  let rest = f.size;
  while (rest % 2 === 1) {
    carry = nodeHash(nodes.pop() as Buffer, carry);
    level += 1;
    rest = Math.floor(rest / 2);
    completed.push({ level, index: Math.floor(f.size / 2 ** level), hash: carry });
  }
  nodes.push(carry);
  return { frontier: { size: f.size + 1, nodes }, completed };
}

/**
 * The Merkle Tree Hash of the frontier's leaves: a right fold `node(f0, node(f1, … node(f[k-2], f[k-1])))`,
 * because the RFC splits off the largest perfect subtree on the left first. `EMPTY_ROOT` for size 0.
 *
 * @example
 * frontierRoot(emptyFrontier).equals(EMPTY_ROOT); // true
 */
export function frontierRoot(f: Frontier): Buffer {
  const last = f.nodes[f.nodes.length - 1];
  if (last === undefined) return Buffer.from(EMPTY_ROOT);
  if (f.nodes.length === 1) return last;
  // Intermediate hashes stay latin1 strings (see sha256 in hash.ts): no Buffer per step.
  FOLD_SCRATCH[0] = 0x01;
  FOLD_SCRATCH.set(last, 1 + HASH_BYTES);
  let root = '';
  for (let i = f.nodes.length - 2; i >= 0; i--) {
    if (i < f.nodes.length - 2) FOLD_SCRATCH.write(root, 1 + HASH_BYTES, HASH_BYTES, 'latin1');
    FOLD_SCRATCH.set(f.nodes[i] as Buffer, 1);
    root = hash('sha256', FOLD_SCRATCH, 'binary');
  }
  return Buffer.from(root, 'latin1');
}

const FOLD_SCRATCH = Buffer.alloc(1 + 2 * HASH_BYTES);

/** Number of set bits of a non-negative safe integer (no 32-bit bit operations). */
function popcount(n: number): number {
  let count = 0;
  for (let rest = n; rest > 0; rest = Math.floor(rest / 2)) count += rest % 2;
  return count;
}

const SIZE_BYTES = 8;

/**
 * Binary form: the size as an 8-byte big-endian integer, then the node hashes, 32 bytes each.
 *
 * @example
 * decodeFrontier(encodeFrontier(f)); // equal to f
 */
export function encodeFrontier(f: Frontier): Buffer {
  const out = Buffer.allocUnsafe(SIZE_BYTES + HASH_BYTES * f.nodes.length);
  out.writeBigUInt64BE(BigInt(f.size), 0);
  f.nodes.forEach((node, i) => node.copy(out, SIZE_BYTES + HASH_BYTES * i));
  return out;
}

/**
 * Bytes an `encodeFrontier` encoding takes at the start of `b` (what follows them is another
 * record's, e.g. the ledger head's trailer); all of `b` when it is too short to say.
 */
export function encodedFrontierBytes(b: Buffer): number {
  if (b.length < SIZE_BYTES) return b.length;
  return Math.min(b.length, SIZE_BYTES + HASH_BYTES * popcount(Number(b.readBigUInt64BE(0))));
}

/**
 * Parse `encodeFrontier` output. The number of hashes must equal the number of set bits of the size;
 * anything else means the stored state is corrupt and throws `EDBX_ERR_INTEGRITY`.
 *
 * @example
 * const f = decodeFrontier(await db.get('merkle:frontier'));
 */
export function decodeFrontier(b: Buffer): Frontier {
  const corrupt = (reason: string) => err('EDBX_ERR_INTEGRITY', { where: 'merkle frontier', reason });
  if (b.length < SIZE_BYTES) throw corrupt(`${b.length} bytes is shorter than the ${SIZE_BYTES}-byte size`);
  const big = b.readBigUInt64BE(0);
  if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`size ${big} is above 2^53 - 1`);
  const size = Number(big);
  const expected = SIZE_BYTES + HASH_BYTES * popcount(size);
  if (b.length !== expected) {
    throw corrupt(`size ${size} needs ${expected} bytes, got ${b.length}`);
  }
  const nodes: Buffer[] = [];
  // Copy: the caller's buffer may be reused (e.g. a database read buffer).
  for (let at = SIZE_BYTES; at < b.length; at += HASH_BYTES)
    nodes.push(Buffer.from(b.subarray(at, at + HASH_BYTES)));
  return { size, nodes };
}
