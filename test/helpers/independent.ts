/**
 * An auditor's own checks, written from the RFCs and the README, independent of the server's code
 * (src/core/merkle): what tests use to check proofs, leaves and signed checkpoints as an outsider would.
 */
import { createHash, createPublicKey, verify as edVerify } from 'node:crypto';
import canonicalize from 'canonicalize';

export const H = (...parts: Buffer[]): Buffer => createHash('sha256').update(Buffer.concat(parts)).digest();

/** RFC 6962 §2.1 Merkle Tree Hash of leaf hashes. */
export function mth(leaves: readonly Buffer[]): Buffer {
  if (leaves.length === 1) return leaves[0]!;
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return H(Buffer.from([1]), mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}

/** RFC 9162 §2.1.3.2: the root an audit path leads to from `leaf`, or undefined when malformed. */
export function walk(
  leaf: Buffer,
  index: number,
  size: number,
  auditPath: readonly string[],
): Buffer | undefined {
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of auditPath.map((h) => Buffer.from(h, 'hex'))) {
    if (sn === 0) return undefined;
    if (fn % 2 === 1 || fn === sn) {
      r = H(Buffer.from([1]), p, r);
      if (fn % 2 === 0)
        do {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        } while (fn % 2 === 0 && fn !== 0);
    } else r = H(Buffer.from([1]), r, p);
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : undefined;
}

/** The leaf of a record, recomputed from its content (RFC 8785 + SHA-256 with the 0x00 prefix). */
export function leafOf(e: { readonly hash: string; readonly merkle_root: string }): Buffer {
  const { hash: _h, merkle_root: _r, ...content } = e;
  return H(Buffer.from([0]), Buffer.from(canonicalize(content)!));
}

/** The README's offline check of a signed note: its size and root when the signature verifies with `pem`. */
export function checkNote(note: string, pem: string): { size: number; root: Buffer } | undefined {
  const [body, sigLine] = note.split('\n\n');
  const sig = Buffer.from(sigLine!.split(' ')[2]!, 'base64').subarray(4);
  if (!edVerify(null, Buffer.from(body + '\n'), createPublicKey(pem), sig)) return undefined;
  const [, size, rootB64] = body!.split('\n');
  return { size: Number(size), root: Buffer.from(rootB64!, 'base64') };
}
