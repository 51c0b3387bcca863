/**
 * Key fingerprints: which master key and which DEK a backup needs, named without the keys (QA
 * disaster-recovery finding 5). A backup opens only with the keys in force when it was taken, so
 * `backup.json` records their fingerprints, and a restore refused for its keys names the fingerprint
 * it needs beside the one of the key given.
 *
 * Both are 16 hex digits bound to the install's HKDF salt (fixed for the life of an install, so a key
 * has one fingerprint in a store and in all its backups, and another install's fingerprints say
 * nothing about this one's). A fingerprint gives no cheaper way to guess a key than the files beside
 * it: the master key's goes through scrypt with the keyring's own parameters, as the keyring's check
 * does; the DEK's is an HMAC under its data key, which the sealed records in the same backup test as
 * cheaply.
 */
import { createHash, createHmac, scryptSync } from 'node:crypto';
import { type ScryptParams, deriveDataKey, masterVerifier } from './kdf.js';

const MASTER_LABEL = 'eventdbx/fingerprint/v1/master-key';
const DEK_LABEL = 'eventdbx/fingerprint/v1/dek';

const shortHex = (digest: Buffer): string => digest.subarray(0, 8).toString('hex');

/**
 * The fingerprint of a master key from its verifier (`masterVerifier(key, salt)`): what a server,
 * which keeps the verifier and not the key, can name.
 */
export function verifierFingerprint(verifier: Buffer, salt: Buffer, params: ScryptParams): string {
  const fpSalt = createHash('sha256').update(MASTER_LABEL).update(salt).digest();
  const stretched = scryptSync(verifier, fpSalt, 32, {
    N: params.N,
    r: params.r,
    p: params.p,
    maxmem: params.maxmem,
  });
  const fp = shortHex(createHmac('sha256', stretched).update(MASTER_LABEL).digest());
  stretched.fill(0);
  return fp;
}

/**
 * The fingerprint of a master key for the install whose keyring has `salt` and `scrypt` (one scrypt:
 * about 100 ms with the default parameters).
 *
 * @example
 * const fp = masterKeyFingerprint('dev-master', Buffer.from(record.salt, 'base64'), record.scrypt);
 * // '3f9a1c0d77e2b410'
 */
export function masterKeyFingerprint(masterKey: string, salt: Buffer, params: ScryptParams): string {
  const verifier = masterVerifier(masterKey, salt);
  try {
    return verifierFingerprint(verifier, salt, params);
  } finally {
    verifier.fill(0);
  }
}

/** The fingerprint of a data key (what a codec holds). */
export const dataKeyFingerprint = (dataKey: Buffer): string =>
  shortHex(createHmac('sha256', dataKey).update(DEK_LABEL).digest());

/**
 * The fingerprint of a DEK for the install whose keyring has `salt`.
 *
 * @example
 * const fp = dekFingerprint('dev-dek', Buffer.from(record.salt, 'base64')); // 'a1b2c3d4e5f60718'
 */
export function dekFingerprint(dek: string, salt: Buffer): string {
  const key = deriveDataKey(dek, salt);
  try {
    return dataKeyFingerprint(key);
  } finally {
    key.fill(0);
  }
}
