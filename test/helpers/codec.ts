/** A record codec that counts what it opens: tests check what a read decrypted, not how long it took. */
import { type RecordCodec, plainCodec } from '../../src/store/codec.js';

export class CountingCodec implements RecordCodec {
  /** Values opened, by kind: the first word of what the store names (`event`, `meta`, `snapshot`…). */
  readonly opened = new Map<string, number>();

  reset(): void {
    this.opened.clear();
  }

  count(kind: string): number {
    return this.opened.get(kind) ?? 0;
  }

  seal(plain: Buffer): Buffer {
    return plainCodec.seal(plain);
  }

  open(sealed: Buffer, where: string): Buffer {
    const kind = where.split(' ', 1)[0]!;
    this.opened.set(kind, this.count(kind) + 1);
    return plainCodec.open(sealed, where);
  }
}
