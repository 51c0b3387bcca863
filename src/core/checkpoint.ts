/**
 * Signed checkpoints of the store-wide ledger tree, in the C2SP tlog-checkpoint "signed note" format
 * (https://c2sp.org/tlog-checkpoint, https://c2sp.org/signed-note):
 *
 *   <origin>\n<tree size>\n<base64 root hash>\ntimestamp <RFC 3339>\n\n— <key name> <base64(key id ‖ signature)>\n
 *
 * The signature is Ed25519 over the note body (everything before the blank line, including its final
 * newline). The key id is the first 4 bytes of SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ 32-byte public key),
 * as signed-note specifies for Ed25519. Auditors verify offline with the exported public key.
 */
import { createHash, createPublicKey, sign, verify } from 'node:crypto';
import type { CheckpointView } from '../protocol/proofs.js';
import { err } from './errors.js';

/** A signed checkpoint as served by `GET /v1/checkpoint` (without the public key). */
export type Checkpoint = Omit<CheckpointView, 'public_key'>;

/** Raw 32-byte Ed25519 public key from a PEM (SPKI). */
export function rawPublicKey(publicKeyPem: string): Buffer {
  const der = createPublicKey(publicKeyPem).export({ type: 'spki', format: 'der' });
  return der.subarray(der.length - 32);
}

export function keyId(keyName: string, publicKeyPem: string): Buffer {
  return createHash('sha256')
    .update(
      Buffer.concat([Buffer.from(keyName, 'utf8'), Buffer.from([0x0a, 0x01]), rawPublicKey(publicKeyPem)]),
    )
    .digest()
    .subarray(0, 4);
}

const body = (origin: string, size: number, rootHex: string, timestamp: string): string =>
  `${origin}\n${size}\n${Buffer.from(rootHex, 'hex').toString('base64')}\ntimestamp ${timestamp}\n`;

export function signCheckpoint(
  head: { size: number; root: string },
  origin: string,
  keyName: string,
  privateKeyPem: string,
  publicKeyPem: string,
  now: Date,
): Checkpoint {
  const timestamp = now.toISOString();
  const text = body(origin, head.size, head.root, timestamp);
  const sig = sign(null, Buffer.from(text, 'utf8'), privateKeyPem);
  const signature = Buffer.concat([keyId(keyName, publicKeyPem), sig]).toString('base64');
  return {
    origin,
    size: head.size,
    root: head.root,
    timestamp,
    signature,
    key_name: keyName,
    note: `${text}\n— ${keyName} ${signature}\n`,
  };
}

/** Parse a signed note; throws EDBX_ERR_INVALID_CHECKPOINT when it is not one. */
export function parseCheckpoint(note: string): Checkpoint & { readonly body: string } {
  const bad = (reason: string) => err('EDBX_ERR_INVALID_CHECKPOINT', { reason });
  const split = note.indexOf('\n\n');
  if (split < 0) throw bad('no blank line between the body and the signature');
  const text = note.slice(0, split + 1);
  const lines = text.split('\n');
  const [origin, sizeLine, rootLine, tsLine] = lines;
  if (!origin || !sizeLine || !rootLine || !/^[0-9]{1,16}$/.test(sizeLine))
    throw bad('expected origin, tree size and root lines');
  const root = Buffer.from(rootLine, 'base64');
  if (root.length !== 32) throw bad('the root is not a base64 SHA-256 hash');
  const timestamp = tsLine?.startsWith('timestamp ') ? tsLine.slice(10) : '';
  const sigLine = note.slice(split + 2).split('\n')[0] ?? '';
  const m = /^— (\S+) ([A-Za-z0-9+/=]+)$/.exec(sigLine);
  if (!m) throw bad('no signature line "— <key name> <signature>"');
  return {
    origin,
    size: Number(sizeLine),
    root: root.toString('hex'),
    timestamp,
    signature: m[2]!,
    key_name: m[1]!,
    note,
    body: text,
  };
}

/** True when the note carries a valid Ed25519 signature by `publicKeyPem` under its key name. */
export function verifyCheckpointSignature(note: string, publicKeyPem: string): boolean {
  const c = parseCheckpoint(note);
  const raw = Buffer.from(c.signature, 'base64');
  if (raw.length !== 4 + 64) return false;
  if (!raw.subarray(0, 4).equals(keyId(c.key_name, publicKeyPem))) return false;
  try {
    return verify(null, Buffer.from(c.body, 'utf8'), publicKeyPem, raw.subarray(4));
  } catch {
    return false;
  }
}
