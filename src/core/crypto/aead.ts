/**
 * AES-256-GCM sealing of records and wrapping of secrets (node:crypto only).
 *
 * Sealed record: 0x01 (format AES-GCM v1) | key id (uint32 BE) | nonce (12) | ciphertext | tag (16).
 * The 5 header bytes are the AAD, so neither the format nor the key id can be swapped undetected.
 * Nonces are random (96 bits): keep well under 2^32 records per data key, i.e. rotate the DEK long before.
 */
import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto';
import { err } from '../errors.js';
import { KEY_BYTES } from './kdf.js';

/** Format byte of an AES-256-GCM v1 sealed value (0x00 is the plain codec). */
export const FORMAT_AES_GCM_V1 = 0x01;
const FORMAT_PLAIN = 0x00;
const HEADER_BYTES = 5;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const BODY_OFFSET = HEADER_BYTES + NONCE_BYTES;
/** Overhead a sealed value adds to its plaintext (33 bytes). */
export const SEAL_OVERHEAD = BODY_OFFSET + TAG_BYTES;
const AUTH_FAILED = 'authentication failed: the record was altered or the key is wrong';
const GCM = 'aes-256-gcm';
const TAG_OPTS = { authTagLength: TAG_BYTES } as const;

// A single randomBytes(12) costs more than the cipher itself; draw nonces from a pool refilled by the
// CSPRNG. Each slot is handed out once, so nonces stay random and never repeat by construction.
const NONCE_POOL = Buffer.allocUnsafeSlow(NONCE_BYTES * 4096);
let noncePos = NONCE_POOL.length;

function takeNonce(out: Buffer, offset: number): void {
  if (noncePos + NONCE_BYTES > NONCE_POOL.length) {
    randomFillSync(NONCE_POOL);
    noncePos = 0;
  }
  NONCE_POOL.copy(out, offset, noncePos, noncePos + NONCE_BYTES);
  noncePos += NONCE_BYTES;
}

function checkKey(key: Buffer): void {
  if (!Buffer.isBuffer(key) || key.length !== KEY_BYTES)
    throw err('EDBX_ERR_INTERNAL', { reason: `an AES-256 key must be ${KEY_BYTES} bytes` });
}

/** True when `id` can be stored as a record key id (uint32; 0 is reserved). */
export const isKeyId = (id: number): boolean => Number.isInteger(id) && id >= 1 && id <= 0xffffffff;

/**
 * Seal `plain` under a 32-byte data key, tagging it with `keyId` (a uint32 >= 1).
 *
 * @example
 * const sealed = sealWith(key, 1, Buffer.from('{"a":"1"}'));
 * openWith((id) => (id === 1 ? key : undefined), sealed, 'event t/1@1'); // the same bytes
 */
export function sealWith(key: Buffer, keyId: number, plain: Buffer): Buffer {
  checkKey(key);
  if (!isKeyId(keyId)) throw err('EDBX_ERR_INTERNAL', { reason: `key id ${keyId} is not a uint32 >= 1` });
  const out = Buffer.allocUnsafe(SEAL_OVERHEAD + plain.length);
  out[0] = FORMAT_AES_GCM_V1;
  out.writeUInt32BE(keyId, 1);
  takeNonce(out, HEADER_BYTES);
  const cipher = createCipheriv(GCM, key, out.subarray(HEADER_BYTES, BODY_OFFSET), TAG_OPTS);
  cipher.setAAD(out.subarray(0, HEADER_BYTES));
  // GCM is a stream mode: update() yields exactly plain.length bytes and final() none.
  cipher.update(plain).copy(out, BODY_OFFSET);
  cipher.final();
  cipher.getAuthTag().copy(out, BODY_OFFSET + plain.length);
  return out;
}

/**
 * Open a value made by {@link sealWith}. `keyFor` maps the record's key id to its key. Any failure
 * (plaintext format, unknown format or key id, truncation, altered byte) throws EDBX_ERR_INTEGRITY
 * naming `where`; plaintext values are refused so that nothing can be slipped into an encrypted store.
 *
 * @example
 * const plain = openWith((id) => keys.get(id), sealed, 'event order/42@3');
 */
export function openWith(keyFor: (id: number) => Buffer | undefined, sealed: Buffer, where: string): Buffer {
  const format = sealed[0];
  if (format !== FORMAT_AES_GCM_V1) {
    const reason =
      format === FORMAT_PLAIN
        ? 'the value is not encrypted but this store is: refusing plaintext that was written without the keys'
        : format === undefined
          ? 'the value is empty'
          : `unknown record format 0x${format.toString(16).padStart(2, '0')}`;
    throw err('EDBX_ERR_INTEGRITY', { where, reason });
  }
  if (sealed.length < SEAL_OVERHEAD)
    throw err('EDBX_ERR_INTEGRITY', { where, reason: 'the encrypted value is truncated' });
  const keyId = sealed.readUInt32BE(1);
  const key = keyFor(keyId);
  if (key === undefined)
    throw err('EDBX_ERR_INTEGRITY', {
      where,
      reason: `the record's key id ${keyId} is unknown to this keyring (altered record, or a DEK missing from the keyring)`,
    });
  checkKey(key);
  const tagAt = sealed.length - TAG_BYTES;
  const decipher = createDecipheriv(GCM, key, sealed.subarray(HEADER_BYTES, BODY_OFFSET), TAG_OPTS);
  decipher.setAAD(sealed.subarray(0, HEADER_BYTES));
  decipher.setAuthTag(sealed.subarray(tagAt));
  const plain = decipher.update(sealed.subarray(BODY_OFFSET, tagAt));
  try {
    decipher.final();
  } catch {
    plain.fill(0); // unauthenticated bytes must not leak out
    throw err('EDBX_ERR_INTEGRITY', { where, reason: AUTH_FAILED });
  }
  return plain;
}

const WRAP_VERSION = Buffer.from([FORMAT_AES_GCM_V1]);

function wrapAad(context: string): Buffer {
  return Buffer.concat([WRAP_VERSION, Buffer.from(context, 'utf8')]);
}

/**
 * Wrap a secret under a 32-byte key-encryption key: base64 of 0x01 | nonce | ciphertext | tag.
 * `context` (not secret) is bound as AAD, so a wrapped value only unwraps for the purpose it was made for.
 *
 * @example
 * const wrapped = wrapSecret(kek, Buffer.from(privateKeyPem), 'signing-key');
 * unwrapSecret(kek, wrapped, 'signing-key').toString(); // privateKeyPem
 */
export function wrapSecret(kek: Buffer, secret: Buffer, context = ''): string {
  checkKey(kek);
  const out = Buffer.allocUnsafe(1 + NONCE_BYTES + secret.length + TAG_BYTES);
  out[0] = FORMAT_AES_GCM_V1;
  takeNonce(out, 1);
  const cipher = createCipheriv(GCM, kek, out.subarray(1, 1 + NONCE_BYTES), TAG_OPTS);
  cipher.setAAD(wrapAad(context));
  cipher.update(secret).copy(out, 1 + NONCE_BYTES);
  cipher.final();
  cipher.getAuthTag().copy(out, 1 + NONCE_BYTES + secret.length);
  return out.toString('base64');
}

/**
 * Unwrap a value made by {@link wrapSecret} with the same key and context. A wrong key, wrong context or
 * altered value throws EDBX_ERR_INTEGRITY (callers that can tell a wrong key apart remap it).
 *
 * @example
 * const pem = unwrapSecret(kek, wrapped, 'signing-key').toString('utf8');
 */
export function unwrapSecret(kek: Buffer, wrapped: string, context = ''): Buffer {
  checkKey(kek);
  const where = context === '' ? 'wrapped secret' : `wrapped secret ${JSON.stringify(context)}`;
  const raw = Buffer.from(wrapped, 'base64');
  if (
    raw.length < 1 + NONCE_BYTES + TAG_BYTES ||
    raw[0] !== FORMAT_AES_GCM_V1 ||
    raw.toString('base64') !== wrapped
  )
    throw err('EDBX_ERR_INTEGRITY', { where, reason: 'not a wrapped value of a known format' });
  const tagAt = raw.length - TAG_BYTES;
  const decipher = createDecipheriv(GCM, kek, raw.subarray(1, 1 + NONCE_BYTES), TAG_OPTS);
  decipher.setAAD(wrapAad(context));
  decipher.setAuthTag(raw.subarray(tagAt));
  const secret = decipher.update(raw.subarray(1 + NONCE_BYTES, tagAt));
  try {
    decipher.final();
  } catch {
    secret.fill(0);
    throw err('EDBX_ERR_INTEGRITY', { where, reason: AUTH_FAILED });
  }
  return secret;
}

/**
 * Attach a secret to a returned object as a non-enumerable property, so `JSON.stringify`, object spread
 * and `console.log` leave it out while typed code can still read it.
 */
export function attachSecret<T extends object, K extends string, V>(
  target: T,
  name: K,
  value: V,
): T & Record<K, V> {
  Object.defineProperty(target, name, { value, enumerable: false, writable: false, configurable: false });
  return target as T & Record<K, V>;
}
