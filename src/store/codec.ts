/**
 * Record codecs: how values holding user data (events, states, snapshots, staged appends) are sealed at
 * rest. The plain codec frames the bytes; the encrypting codec (src/core/crypto) seals them with
 * AES-256-GCM. Every sealed value starts with a format byte so stores can hold both during migration.
 */
import { err } from '../core/errors.js';

export interface RecordCodec {
  /** Seal plaintext for storage. */
  seal(plain: Buffer): Buffer;
  /** Open a sealed value; throws EDBX_ERR_INTEGRITY naming `where` when it is not authentic. */
  open(sealed: Buffer, where: string): Buffer;
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
