/**
 * Key derivation: the master key becomes the key-encryption key (KEK) through scrypt, a DEK string becomes
 * a 256-bit data key through HKDF-SHA256. Both use a per-install random salt kept in the keyring record.
 * Everything comes from `node:crypto`; nothing here logs or echoes a secret.
 */
import { hkdfSync, scryptSync } from 'node:crypto';
import { err } from '../errors.js';

/** scrypt cost parameters, stored in the keyring record so they can be raised later (on rewrap). */
export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  readonly N: number;
  /** Block size. */
  readonly r: number;
  /** Parallelisation. */
  readonly p: number;
  /** Memory cap in bytes passed to scrypt; must cover 128 * r * (N + p + 2). */
  readonly maxmem: number;
}

/** Strong defaults (~100 ms and 32 MiB per derivation): used unless a caller passes other parameters. */
export const DEFAULT_SCRYPT: ScryptParams = Object.freeze({
  N: 2 ** 15,
  r: 8,
  p: 1,
  maxmem: 64 * 1024 * 1024,
});

/** Bounds accepted from a keyring record: low enough to refuse absurd costs, high enough for growth. */
export const SCRYPT_LIMITS = Object.freeze({
  minN: 2 ** 10,
  maxN: 2 ** 22,
  maxR: 32,
  maxP: 16,
  maxMem: 2 ** 31,
});

/** Length of every derived key in bytes (AES-256). */
export const KEY_BYTES = 32;

const DEK_INFO = Buffer.from('eventdbx/dek/v1', 'utf8');
const MASTER_INFO = Buffer.from('eventdbx/control/v1/master-key', 'utf8');

/** Why `params` are unusable, or undefined when they are fine. */
export function scryptParamsProblem(params: ScryptParams): string | undefined {
  const { N, r, p, maxmem } = params;
  const L = SCRYPT_LIMITS;
  if (!Number.isSafeInteger(N) || N < L.minN || N > L.maxN || (N & (N - 1)) !== 0)
    return `N must be a power of two between ${L.minN} and ${L.maxN}`;
  if (!Number.isSafeInteger(r) || r < 1 || r > L.maxR) return `r must be a whole number 1-${L.maxR}`;
  if (!Number.isSafeInteger(p) || p < 1 || p > L.maxP) return `p must be a whole number 1-${L.maxP}`;
  if (!Number.isSafeInteger(maxmem) || maxmem > L.maxMem)
    return `maxmem must be a whole number <= ${L.maxMem}`;
  // OpenSSL needs 128*r*(N+2) bytes for V plus 128*r*p for B.
  if (128 * r * (N + 2 + p) > maxmem) return 'maxmem is too small for N, r and p';
  return undefined;
}

function requireSecret(name: string, value: unknown): asserts value is string {
  // The value is never echoed: only its emptiness or type is reported.
  if (typeof value !== 'string' || value.length === 0)
    throw err('EDBX_ERR_INVALID_ARGUMENT', {
      name,
      value: typeof value === 'string' ? '' : `<${typeof value}>`,
      reason: 'use a non-empty string',
    });
}

function requireSalt(salt: Buffer): void {
  if (!Buffer.isBuffer(salt) || salt.length < 16)
    throw err('EDBX_ERR_INVALID_ARGUMENT', {
      name: 'salt',
      value: `<${Buffer.isBuffer(salt) ? `${salt.length} bytes` : typeof salt}>`,
      reason: 'use at least 16 random bytes',
    });
}

/**
 * Derive the 32-byte key-encryption key from the master key with scrypt. Synchronous and deliberately slow
 * (about 100 ms with {@link DEFAULT_SCRYPT}); call it once when opening a data dir. Never log the result.
 *
 * @example
 * const kek = deriveKek('dev-master', randomBytes(16), DEFAULT_SCRYPT);
 */
export function deriveKek(masterKey: string, salt: Buffer, params: ScryptParams): Buffer {
  requireSecret('master key', masterKey);
  requireSalt(salt);
  const problem = scryptParamsProblem(params);
  if (problem !== undefined)
    throw err('EDBX_ERR_INVALID_ARGUMENT', {
      name: 'scrypt parameters',
      value: JSON.stringify(params),
      reason: problem,
    });
  return scryptSync(Buffer.from(masterKey, 'utf8'), salt, KEY_BYTES, {
    N: params.N,
    r: params.r,
    p: params.p,
    maxmem: params.maxmem,
  });
}

/**
 * Derive the 32-byte data key for a DEK string: HKDF-SHA256(ikm = DEK, salt = install salt,
 * info = 'eventdbx/dek/v1'). Fast and deterministic, so the same DEK always finds its keyring entry.
 *
 * @example
 * const key = deriveDataKey('dev-dek', installSalt); // 32 bytes, feed to AesGcmCodec
 */
export function deriveDataKey(dek: string, salt: Buffer): Buffer {
  requireSecret('DEK', dek);
  requireSalt(salt);
  return Buffer.from(hkdfSync('sha256', Buffer.from(dek, 'utf8'), salt, DEK_INFO, KEY_BYTES));
}

/**
 * A verifier of the master key: HKDF-SHA256(ikm = master key, salt = install salt, info =
 * 'eventdbx/control/v1/master-key'). What a server keeps instead of the key, to check the proofs CLI
 * commands send (key-proof.ts) and to name the key's fingerprint (fingerprint.ts). Never log it.
 *
 * @example
 * const verifier = masterVerifier('dev-master', installSalt); // 32 bytes
 */
export function masterVerifier(masterKey: string, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(masterKey, 'utf8'), salt, MASTER_INFO, KEY_BYTES));
}
