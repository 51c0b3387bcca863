/** Encryption at rest: key derivation, AES-256-GCM records, the keyring and checkpoint signing keys. */
export { DEFAULT_SCRYPT, KEY_BYTES, type ScryptParams, deriveDataKey, deriveKek } from './kdf.js';
export { FORMAT_AES_GCM_V1, SEAL_OVERHEAD, openWith, sealWith, unwrapSecret, wrapSecret } from './aead.js';
export { AesGcmCodec, type AesGcmCodecOptions } from './codec.js';
export {
  type CreatedKeyring,
  type DekStatus,
  type KeyringRecord,
  type OpenedKeyring,
  type WithKek,
  createKeyring,
  getKeyringSecret,
  openKeyring,
  putKeyringSecret,
  rewrapKeyring,
  unlockKeyring,
  validateKeyringRecord,
} from './keyring.js';
export { dataKeyFingerprint, dekFingerprint, masterKeyFingerprint } from './fingerprint.js';
export { KeyCheck, type KeyProof, type ProvableKeys, proveKeys } from './key-proof.js';
export { type SigningKeyPair, generateSigningKey, sign, verifySignature } from './signing.js';
