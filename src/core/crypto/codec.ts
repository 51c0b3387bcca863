/**
 * The encrypting record codec: seals every stored value with AES-256-GCM under the active data key and
 * opens values sealed under any key of the keyring. Keys live in private fields, so the codec can be
 * logged or serialised without leaking them.
 */
import type { RecordCodec, SharedCodec } from '../../store/codec.js';
import { timingSafeEqual } from 'node:crypto';
import { err } from '../errors.js';
import { isKeyId, openWith, sealWith } from './aead.js';
import { KEY_BYTES } from './kdf.js';
import { dataKeyFingerprint } from './fingerprint.js';
import { dekTag } from './key-proof.js';

export interface AesGcmCodecOptions {
  /** Key id used for new seals; must be in `keys`. */
  readonly activeKeyId: number;
  /** Every data key that may have sealed a stored record, by key id (32 bytes each). */
  readonly keys: ReadonlyMap<number, Buffer>;
}

/**
 * {@link RecordCodec} for an encrypted store. Plaintext values (format 0x00), unknown key ids and altered
 * records are all refused with EDBX_ERR_INTEGRITY.
 *
 * @example
 * const codec = new AesGcmCodec({ activeKeyId: 1, keys: new Map([[1, deriveDataKey('dev-dek', salt)]]) });
 * const sealed = codec.seal(Buffer.from('{"a":"1"}'));
 * codec.open(sealed, 'event order/42@1'); // the same bytes
 */
export class AesGcmCodec implements RecordCodec {
  readonly #keys: Map<number, Buffer>;
  readonly #activeId: number;
  readonly #activeKey: Buffer;
  // Bound once: open() is on the hot read path.
  readonly #keyFor = (id: number): Buffer | undefined => this.#keys.get(id);

  constructor(options: AesGcmCodecOptions) {
    this.#keys = new Map();
    for (const [id, key] of options.keys) {
      if (!isKeyId(id)) throw err('EDBX_ERR_INTERNAL', { reason: `key id ${id} is not a uint32 >= 1` });
      if (!Buffer.isBuffer(key) || key.length !== KEY_BYTES)
        throw err('EDBX_ERR_INTERNAL', { reason: `data key ${id} must be ${KEY_BYTES} bytes` });
      // Own copy: the caller may zero or reuse its buffers.
      this.#keys.set(id, Buffer.from(key));
    }
    const active = this.#keys.get(options.activeKeyId);
    if (active === undefined)
      throw err('EDBX_ERR_INTERNAL', {
        reason: `active key id ${options.activeKeyId} is not in the keyring`,
      });
    this.#activeId = options.activeKeyId;
    this.#activeKey = active;
  }

  /** Key id stamped on new seals. */
  get activeKeyId(): number {
    return this.#activeId;
  }

  /** Key ids this codec can open, ascending. */
  get keyIds(): number[] {
    return [...this.#keys.keys()].sort((a, b) => a - b);
  }

  /**
   * The id of the data key whose proof (see key-proof.ts) over `nonce` is `tag`, or undefined. Every key
   * is compared, in constant time each, without an early exit.
   */
  keyIdProving(nonce: string, tag: Buffer): number | undefined {
    let found: number | undefined;
    for (const [id, key] of this.#keys) {
      const mine = dekTag(key, nonce);
      if (mine.length === tag.length && timingSafeEqual(mine, tag)) found = id;
    }
    return found;
  }

  /** The fingerprint (fingerprint.ts) of the data key `id`, by default the active one. */
  fingerprint(id: number = this.#activeId): string | undefined {
    const key = this.#keys.get(id);
    return key === undefined ? undefined : dataKeyFingerprint(key);
  }

  seal(plain: Buffer): Buffer {
    return sealWith(this.#activeKey, this.#activeId, plain);
  }

  open(sealed: Buffer, where: string): Buffer {
    return openWith(this.#keyFor, sealed, where);
  }

  /** The keys, for a worker thread of this process to open the same values (never log this). */
  share(): SharedCodec {
    return { format: 'aes-256-gcm', activeKeyId: this.#activeId, keys: [...this.#keys] };
  }

  /** What `JSON.stringify` shows: the format and key ids, never key material. */
  toJSON(): { format: 'aes-256-gcm'; active_key_id: number; key_ids: number[] } {
    return { format: 'aes-256-gcm', active_key_id: this.#activeId, key_ids: this.keyIds };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `AesGcmCodec { active_key_id: ${this.#activeId}, key_ids: [${this.keyIds.join(', ')}] }`;
  }
}
