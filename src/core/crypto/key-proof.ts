/**
 * Proof of the keys a CLI command was given, checked by a running server before it runs the command
 * for it, so a wrong or stale key is refused exactly as when the CLI opens the store itself
 * (EDBX_ERR_WRONG_MASTER_KEY, EDBX_ERR_DEK_MISMATCH). Neither key crosses the control socket: the
 * master key is proved by an HMAC under a key derived from it, the DEK by an HMAC under its data key,
 * each over a fresh random nonce. Both derivations use the install's HKDF salt (in the keyring, which
 * holds no secret), so the server compares with what it already holds: a verifier of the master key it
 * runs with, and the data keys of its codec (which also tells an earlier DEK from an unknown one).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { err } from '../errors.js';
import { verifierFingerprint } from './fingerprint.js';
import { type ScryptParams, deriveDataKey, masterVerifier } from './kdf.js';

/** What a CLI command sends with its request (base64 strings; `dek` left out by `config`). */
export interface KeyProof {
  readonly nonce: string;
  readonly master_key: string;
  readonly dek?: string;
}

const NONCE_BYTES = 16;

const tag = (key: Buffer, what: 'master-key' | 'dek', nonce: string): Buffer =>
  createHmac('sha256', key).update(`eventdbx/control/v1/proof/${what}/${nonce}`, 'utf8').digest();

/** The HMAC a DEK's data key makes over `nonce` (for AesGcmCodec to find the key it proves). */
export const dekTag = (dataKey: Buffer, nonce: string): Buffer => tag(dataKey, 'dek', nonce);

/**
 * Prove `keys` for the install whose HKDF salt is `salt` (leave `dek` out to prove the master key alone).
 *
 * @example
 * const proof = proveKeys({ masterKey: 'dev-master', dek: 'dev-dek' }, Buffer.from(record.salt, 'base64'));
 */
export function proveKeys(keys: { masterKey: string; dek?: string | undefined }, salt: Buffer): KeyProof {
  const nonce = randomBytes(NONCE_BYTES).toString('base64');
  const verifier = masterVerifier(keys.masterKey, salt);
  const master_key = tag(verifier, 'master-key', nonce).toString('base64');
  verifier.fill(0);
  if (keys.dek === undefined) return { nonce, master_key };
  const dataKey = deriveDataKey(keys.dek, salt);
  const dek = dekTag(dataKey, nonce).toString('base64');
  dataKey.fill(0);
  return { nonce, master_key, dek };
}

/** The data keys a proof is checked against: an AesGcmCodec. */
export interface ProvableKeys {
  readonly activeKeyId: number;
  /** The id of the key that made `tagged` over `nonce`, or undefined. */
  keyIdProving(nonce: string, tagged: Buffer): number | undefined;
}

function decoded(value: unknown): Buffer | undefined {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]{1,128}={0,2}$/.test(value)) return undefined;
  return Buffer.from(value, 'base64');
}

/**
 * The server's side: holds a verifier of the master key it runs with (never the key itself) and checks
 * proofs against it and the data keys of its codec.
 */
export class KeyCheck {
  readonly #salt: Buffer;
  #verifier: Buffer;
  #fingerprint: string | undefined;

  constructor(masterKey: string, salt: Buffer) {
    this.#salt = Buffer.from(salt);
    this.#verifier = masterVerifier(masterKey, salt);
  }

  /** After the master key changed (`config --master-key`): proofs must use the new one. */
  setMasterKey(masterKey: string): void {
    this.#verifier.fill(0);
    this.#verifier = masterVerifier(masterKey, this.#salt);
    this.#fingerprint = undefined;
  }

  /**
   * The fingerprint of the master key (fingerprint.ts), from the verifier: worked out the first time
   * it is asked for (one scrypt with the keyring's `params`), not on every open.
   */
  masterKeyFingerprint(params: ScryptParams): string {
    return (this.#fingerprint ??= verifierFingerprint(this.#verifier, this.#salt, params));
  }

  /**
   * Refuse a proof of other keys than the store's, with the codes of opening the store directly:
   * EDBX_ERR_WRONG_MASTER_KEY, then EDBX_ERR_DEK_MISMATCH (unless `dekRequired` is false and no DEK
   * proof was sent: `config` proves the master key alone, as it opens the store with it alone).
   */
  check(proof: unknown, keys: ProvableKeys, dekRequired: boolean): void {
    const p = (typeof proof === 'object' && proof !== null ? proof : {}) as Record<string, unknown>;
    const nonce = typeof p.nonce === 'string' && p.nonce.length <= 64 ? p.nonce : undefined;
    const master = decoded(p.master_key);
    const expected = nonce === undefined ? undefined : tag(this.#verifier, 'master-key', nonce);
    if (!expected || !master || master.length !== expected.length || !timingSafeEqual(master, expected))
      throw err('EDBX_ERR_WRONG_MASTER_KEY');
    if (p.dek === undefined && !dekRequired) return;
    const dek = decoded(p.dek);
    const id = dek === undefined ? undefined : keys.keyIdProving(nonce!, dek);
    if (id !== keys.activeKeyId)
      throw err('EDBX_ERR_DEK_MISMATCH', {
        what:
          id === undefined
            ? 'is not a key of this store'
            : 'is an earlier key of this store, not its active one',
      });
  }
}
