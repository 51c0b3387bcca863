/**
 * Proof generation from stored perfect nodes: RFC 9162 §2.1.3.1 (inclusion) and §2.1.4.1
 * (consistency), which are RFC 6962 §2.1.1 PATH and §2.1.2 PROOF/SUBPROOF.
 *
 * Every hash those algorithms need is the Merkle Tree Hash of some leaf range D[a:b]. In both
 * algorithms `a` is always aligned to the largest power of two k < b - a, so the range is either a
 * perfect aligned node (read it) or splits into a perfect left part and a smaller right part with the
 * same property. A proof therefore reads at most O(log^2 n) perfect nodes and no leaves beyond them.
 * Generation is split in two steps (which nodes, then hashes) so a store can batch its reads.
 */
import { err } from '../errors.js';
import { nodeHash } from './hash.js';

/** A perfect node: leaves `[index * 2^level, (index + 1) * 2^level)`. */
export interface NodeRef {
  readonly level: number;
  readonly index: number;
}

/** Returns a stored perfect node hash; throws if it is missing. */
export type NodeSource = (level: number, index: number) => Buffer;

/** Half-open leaf range [start, end) whose Merkle Tree Hash is one proof element. */
interface Range {
  readonly start: number;
  readonly end: number;
}

/** Largest power of two strictly below n (n >= 2). Multiplication, not `<<`: n may exceed 2^31. */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** log2(n) when n is a power of two, else -1. */
function exactLevel(n: number): number {
  let level = 0;
  let p = 1;
  while (p < n) {
    p *= 2;
    level += 1;
  }
  return p === n ? level : -1;
}

const rangeError = (reason: string) => err('EDBX_ERR_INVALID_PROOF_RANGE', { reason });

function checkCount(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw rangeError(`${name} ${value} is not a whole number >= ${min}`);
  }
}

function checkInclusion(leafIndex: number, treeSize: number): void {
  checkCount('tree size', treeSize, 1);
  checkCount('leaf index', leafIndex, 0);
  if (leafIndex >= treeSize) throw rangeError(`leaf index ${leafIndex} is not below tree size ${treeSize}`);
}

function checkConsistency(first: number, second: number): void {
  checkCount('first tree size', first, 1);
  checkCount('second tree size', second, 1);
  if (first > second) throw rangeError(`first tree size ${first} is above second tree size ${second}`);
}

/** PATH(m, D[n]) as ranges, leaf side first. Iterative: walk down from the root, then reverse. */
function inclusionRanges(leafIndex: number, treeSize: number): Range[] {
  const topDown: Range[] = [];
  let start = 0;
  let end = treeSize;
  while (end - start > 1) {
    const k = splitPoint(end - start);
    if (leafIndex < start + k) {
      topDown.push({ start: start + k, end });
      end = start + k;
    } else {
      topDown.push({ start, end: start + k });
      start += k;
    }
  }
  return topDown.reverse();
}

/** SUBPROOF(m, D[n], true) as ranges, in proof order. */
function consistencyRanges(first: number, second: number): Range[] {
  if (first === second) return [];
  const topDown: Range[] = [];
  let start = 0;
  let end = second;
  // `whole` is the RFC's b flag: true while D[start:start+m] is the whole old tree, whose root the
  // verifier already has, so it is left out of the proof.
  let whole = true;
  for (;;) {
    const size = end - start;
    const m = first - start;
    if (m === size) {
      if (!whole) topDown.push({ start, end });
      break;
    }
    const k = splitPoint(size);
    if (m <= k) {
      topDown.push({ start: start + k, end });
      end = start + k;
    } else {
      topDown.push({ start, end: start + k });
      start += k;
      whole = false;
    }
  }
  return topDown.reverse();
}

/** The perfect nodes whose hashes make up MTH(D[start:end]). */
function rangeNodes(start: number, end: number, out: NodeRef[]): void {
  const size = end - start;
  const level = exactLevel(size);
  if (level >= 0 && start % size === 0) {
    out.push({ level, index: start / size });
    return;
  }
  const k = splitPoint(size);
  rangeNodes(start, start + k, out);
  rangeNodes(start + k, end, out);
}

/** MTH(D[start:end]) from stored perfect nodes (same decomposition as `rangeNodes`). */
function rangeHash(get: NodeSource, start: number, end: number): Buffer {
  const size = end - start;
  const level = exactLevel(size);
  if (level >= 0 && start % size === 0) return get(level, start / size);
  const k = splitPoint(size);
  return nodeHash(rangeHash(get, start, start + k), rangeHash(get, start + k, end));
}

function uniqueNodes(ranges: readonly Range[]): NodeRef[] {
  const all: NodeRef[] = [];
  for (const r of ranges) rangeNodes(r.start, r.end, all);
  const seen = new Set<string>();
  return all.filter((n) => {
    const key = `${n.level}:${n.index}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * The perfect nodes `inclusionProof(get, leafIndex, treeSize)` will read, without duplicates.
 * Throws `EDBX_ERR_INVALID_PROOF_RANGE` unless 0 <= leafIndex < treeSize.
 *
 * @example
 * const refs = inclusionNodes(5, 1000);
 * const hashes = await store.getNodes(refs); // one batched read
 * const proof = inclusionProof((l, i) => hashes.get(`${l}:${i}`)!, 5, 1000);
 */
export function inclusionNodes(leafIndex: number, treeSize: number): NodeRef[] {
  checkInclusion(leafIndex, treeSize);
  return uniqueNodes(inclusionRanges(leafIndex, treeSize));
}

/**
 * The perfect nodes `consistencyProof(get, first, second)` will read, without duplicates.
 * Throws `EDBX_ERR_INVALID_PROOF_RANGE` unless 0 < first <= second.
 *
 * @example
 * const refs = consistencyNodes(3, 7);
 */
export function consistencyNodes(first: number, second: number): NodeRef[] {
  checkConsistency(first, second);
  return uniqueNodes(consistencyRanges(first, second));
}

/**
 * The audit path for leaf `leafIndex` in the tree of the first `treeSize` leaves, leaf side first
 * (RFC 9162 §2.1.3.1). Throws `EDBX_ERR_INVALID_PROOF_RANGE` unless 0 <= leafIndex < treeSize.
 *
 * @example
 * const proof = inclusionProof(get, 2, 5);
 * verifyInclusion(leaf2, 2, 5, proof, root5); // true
 */
export function inclusionProof(get: NodeSource, leafIndex: number, treeSize: number): Buffer[] {
  checkInclusion(leafIndex, treeSize);
  return inclusionRanges(leafIndex, treeSize).map((r) => rangeHash(get, r.start, r.end));
}

/**
 * The consistency proof that the tree of `first` leaves is a prefix of the tree of `second` leaves
 * (RFC 9162 §2.1.4.1). Empty when first == second. Throws `EDBX_ERR_INVALID_PROOF_RANGE` unless
 * 0 < first <= second.
 *
 * @example
 * const proof = consistencyProof(get, 3, 7);
 * verifyConsistency(3, 7, root3, root7, proof); // true
 */
export function consistencyProof(get: NodeSource, first: number, second: number): Buffer[] {
  checkConsistency(first, second);
  return consistencyRanges(first, second).map((r) => rangeHash(get, r.start, r.end));
}
