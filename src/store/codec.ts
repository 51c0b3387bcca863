/**
 * Record codecs: how values holding user data (events, states, snapshots, staged appends) are sealed at
 * rest. The plain codec frames the bytes; the encrypting codec (src/core/crypto) seals them with
 * AES-256-GCM. Every sealed value starts with a format byte so stores can hold both during migration.
 */
import { AesGcmCodec } from '../core/crypto/codec.js';
import { err } from '../core/errors.js';

export interface RecordCodec {
  /** Seal plaintext for storage. */
  seal(plain: Buffer): Buffer;
  /** Open a sealed value; throws EDBX_ERR_INTEGRITY naming `where` when it is not authentic. */
  open(sealed: Buffer, where: string): Buffer;
  /**
   * What another thread of this process needs to open the same values (`codecFromShared`). Holds key
   * material: it is posted to worker threads only, never logged or written. Codecs without it are
   * used on the thread that has them.
   */
  share?(): SharedCodec;
}

export type SharedCodec =
  | { readonly format: 'plain' }
  | {
      readonly format: 'aes-256-gcm';
      readonly activeKeyId: number;
      readonly keys: ReadonlyArray<readonly [number, Uint8Array]>;
    };

/** The codec a worker thread rebuilds from `codec.share()`. */
export function codecFromShared(shared: SharedCodec): RecordCodec {
  if (shared.format === 'plain') return plainCodec;
  return new AesGcmCodec({
    activeKeyId: shared.activeKeyId,
    keys: new Map(shared.keys.map(([id, key]) => [id, Buffer.from(key)])),
  });
}

export const FORMAT_PLAIN = 0x00;

export const plainCodec: RecordCodec = {
  seal: (plain) => Buffer.concat([Buffer.from([FORMAT_PLAIN]), plain]),
  open(sealed, where) {
    if (sealed[0] !== FORMAT_PLAIN) {
      throw err('EDBX_ERR_INTEGRITY', {
        where,
        reason: 'the value is encrypted or corrupt; open the store with its keys',
      });
    }
    return sealed.subarray(1);
  },
  share: () => ({ format: 'plain' }),
};

export const sealJson = (codec: RecordCodec, value: unknown): Buffer =>
  codec.seal(Buffer.from(JSON.stringify(value), 'utf8'));

export function openJson<T>(codec: RecordCodec, sealed: Buffer, where: string): T {
  const plain = codec.open(sealed, where);
  try {
    return JSON.parse(plain.toString('utf8')) as T;
  } catch {
    throw err('EDBX_ERR_INTEGRITY', { where, reason: 'the stored value is not valid JSON' });
  }
}
