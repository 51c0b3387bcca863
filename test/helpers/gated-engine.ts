/**
 * An in-memory engine whose scans can be held at one entry: a test starts a long read, waits until it
 * is held there, does something (the client goes away, the server stops), then lets it go on and sees
 * how many entries the read went on to take (`entries`), without relying on timing. Or something is
 * done at one entry without holding the scan (`at`): what the read does next, with no pause it did
 * not take itself.
 */
import { err } from '../../src/core/errors.js';
import type { RangeOptions, Space } from '../../src/storage/engine.js';
import { MemoryEngine } from '../../src/storage/memory/memory-engine.js';

export class GatedEngine extends MemoryEngine {
  /** Entries handed out by every scan so far. */
  entries = 0;
  /** Scans that ended (read to their end, stopped or failed). */
  scansEnded = 0;
  #holdAt = Infinity;
  #held: (() => void) | undefined;
  #onHeld: (() => void) | undefined;
  #at = Infinity;
  #atDo: (() => void) | undefined;

  /** Hold the next scan once `after` more entries were handed out; resolves when a scan is held. */
  holdAfter(after: number): Promise<void> {
    this.#holdAt = this.entries + after;
    return new Promise((resolve) => (this.#onHeld = resolve));
  }

  /** Call `fn` as a scan hands out its entry `after` entries from now; the scan goes on at once. */
  at(after: number, fn: () => void): void {
    this.#at = this.entries + after;
    this.#atDo = fn;
  }

  /** Let the held scan go on. */
  release(): void {
    this.#holdAt = Infinity;
    this.#held?.();
    this.#held = undefined;
  }

  protected override async *_range(space: Space, options: RangeOptions): AsyncIterable<[Buffer, Buffer]> {
    try {
      yield* this.#gated(space, options);
    } finally {
      this.scansEnded++;
    }
  }

  async *#gated(space: Space, options: RangeOptions): AsyncIterable<[Buffer, Buffer]> {
    for await (const entry of super._range(space, options)) {
      if (++this.entries === this.#at) {
        const fn = this.#atDo;
        this.#atDo = undefined;
        fn?.();
      }
      if (this.entries >= this.#holdAt) {
        await new Promise<void>((resolve) => {
          this.#held = resolve;
          this.#onHeld?.();
        });
        // As RocksDB does, a scan cannot go on once its database is closed.
        if (this.status !== 'open') throw err('EDBX_ERR_STORE_NOT_OPEN');
      }
      yield entry;
    }
  }
}
