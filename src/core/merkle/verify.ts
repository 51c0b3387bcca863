/**
 * Proof verification exactly as RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency). The
 * iterative algorithms walk the bits of the index and size, so a proof that is too long or too short
 * is rejected, not just one with a wrong hash. Sizes are JS numbers up to 2^53: shifts are written as
 * `Math.floor(x / 2)` because `>>` truncates to 32 bits. Malformed input returns false, never throws:
 * a verifier's input comes from someone else.
 */
import { HASH_BYTES, nodeHash } from './hash.js';

const isHash = (b: Uint8Array): boolean => b.length === HASH_BYTES;
const lsb = (x: number): boolean => x % 2 === 1;
const half = (x: number): number => Math.floor(x / 2);
const isCount = (x: number): boolean => Number.isSafeInteger(x) && x >= 0;

function isPowerOfTwo(n: number): boolean {
  let p = 1;
  while (p < n) p *= 2;
  return p === n;
}

/**
 * The root implied by an inclusion proof, or undefined when the proof has the wrong shape (wrong
 * length for this index and size, a hash that is not 32 bytes, or an index outside the tree).
 *
 * @example
 * rootFromInclusionProof(leaf, 2, 5, proof)?.equals(trustedRoot);
 */
export function rootFromInclusionProof(
  leaf: Buffer,
  leafIndex: number,
  treeSize: number,
  proof: readonly Buffer[],
): Buffer | undefined {
  if (!isCount(leafIndex) || !isCount(treeSize) || leafIndex >= treeSize) return undefined;
  if (!isHash(leaf) || !proof.every(isHash)) return undefined;
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r: Buffer = Buffer.from(leaf);
  for (const p of proof) {
    if (sn === 0) return undefined; // proof too long
    if (lsb(fn) || fn === sn) {
      r = nodeHash(p, r);
      // On the right edge of the tree, levels without a right sibling are skipped.
      while (!lsb(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 ? r : undefined; // sn > 0: proof too short
}

/**
 * Whether `proof` shows that `leaf` (a leaf hash) is leaf number `leafIndex` of the tree of
 * `treeSize` leaves whose root is `root` (RFC 9162 §2.1.3.2).
 *
 * @example
 * verifyInclusion(leafHash(data), 2, 5, proof, root5); // true
 */
export function verifyInclusion(
  leaf: Buffer,
  leafIndex: number,
  treeSize: number,
  proof: readonly Buffer[],
  root: Buffer,
): boolean {
  if (!isHash(root)) return false;
  return rootFromInclusionProof(leaf, leafIndex, treeSize, proof)?.equals(root) ?? false;
}

/**
 * Whether `proof` shows that the tree of `first` leaves with root `firstRoot` is a prefix of the tree
 * of `second` leaves with root `secondRoot` (RFC 9162 §2.1.4.2). first == second needs an empty proof
 * and equal roots; first == 0 is rejected (the RFC defines no proof from the empty tree), as is
 * first > second.
 *
 * @example
 * verifyConsistency(3, 7, root3, root7, proof); // true
 */
export function verifyConsistency(
  first: number,
  second: number,
  firstRoot: Buffer,
  secondRoot: Buffer,
  proof: readonly Buffer[],
): boolean {
  if (!isCount(first) || !isCount(second) || first === 0 || first > second) return false;
  if (!isHash(firstRoot) || !isHash(secondRoot) || !proof.every(isHash)) return false;
  if (first === second) return proof.length === 0 && firstRoot.equals(secondRoot);
  if (proof.length === 0) return false;
  // A power-of-two old tree is a perfect node of the new one: its root is the starting point and the
  // RFC leaves it out of the proof.
  const path = isPowerOfTwo(first) ? [firstRoot, ...proof] : proof;
  let fn = first - 1;
  let sn = second - 1;
  while (lsb(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  const seed = path[0] as Buffer;
  let fr = seed;
  let sr = seed;
  for (const c of path.slice(1)) {
    if (sn === 0) return false; // proof too long
    if (lsb(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (!lsb(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && fr.equals(firstRoot) && sr.equals(secondRoot);
}
