/**
 * Ed25519 keys for signed checkpoints. The private key is kept wrapped under the keyring's KEK (see
 * `putKeyringSecret` in keyring.ts, or `wrapSecret` directly); the public key can be published.
 */
import {
  type KeyObject,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign as edSign,
  verify as edVerify,
} from 'node:crypto';
import { err } from '../errors.js';
import { attachSecret } from './aead.js';

// The generic AES-GCM wrapping lives with the AEAD code; re-exported here for signing-key callers.
export { unwrapSecret, wrapSecret } from './aead.js';

export interface SigningKeyPair {
  /** SPKI PEM; safe to publish. */
  readonly publicKeyPem: string;
  /** PKCS#8 PEM. Non-enumerable: left out of JSON and logs. Store it only wrapped. */
  readonly privateKeyPem: string;
}

/**
 * Generate a fresh Ed25519 key pair.
 *
 * @example
 * const pair = generateSigningKey();
 * const wrapped = wrapSecret(kek, Buffer.from(pair.privateKeyPem), 'checkpoint-signing-key');
 */
export function generateSigningKey(): SigningKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519', {
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return attachSecret({ publicKeyPem: publicKey }, 'privateKeyPem', privateKey);
}

function ed25519(load: () => KeyObject, what: string): KeyObject {
  let key: KeyObject;
  try {
    key = load();
  } catch {
    // Node's parse errors are generic, but never risk echoing key material: report only what it was.
    throw err('EDBX_ERR_INTEGRITY', { where: what, reason: 'not a valid PEM key' });
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw err('EDBX_ERR_INTEGRITY', { where: what, reason: 'not an Ed25519 key' });
  return key;
}

/**
 * Sign `message` with an Ed25519 private key (64-byte signature).
 *
 * @example
 * const signature = sign(pair.privateKeyPem, Buffer.from(checkpointJson));
 */
export function sign(privateKeyPem: string, message: Buffer): Buffer {
  const key = ed25519(() => createPrivateKey(privateKeyPem), 'checkpoint signing key');
  return edSign(null, message, key);
}

/**
 * Verify an Ed25519 signature. False for a wrong or malformed signature; a public key that is not an
 * Ed25519 PEM throws EDBX_ERR_INTEGRITY.
 *
 * @example
 * verifySignature(pair.publicKeyPem, Buffer.from(checkpointJson), signature); // true
 */
export function verifySignature(publicKeyPem: string, message: Buffer, signature: Buffer): boolean {
  const key = ed25519(() => createPublicKey(publicKeyPem), 'checkpoint public key');
  try {
    return edVerify(null, message, key, signature);
  } catch {
    return false;
  }
}
