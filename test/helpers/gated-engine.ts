/**
 * An in-memory engine whose scans can be held at one entry: a test starts a long read, waits until it
 * is held there, does something (the client goes away, the server stops), then lets it go on and sees
 * how many entries the read went on to take (`entries`), without relying on timing.
 */
import { err } from '../../src/core/errors.js';
import type { RangeOptions, Space } from '../../src/storage/engine.js';
import { MemoryEngine } from '../../src/storage/memory/memory-engine.js';

export class GatedEngine extends MemoryEngine {
  /** Entries handed out by every scan so far. */
  entries = 0;
  #holdAt = Infinity;
  #held: (() => void) | undefined;
  #onHeld: (() => void) | undefined;

  /** Hold the next scan once `after` more entries were handed out; resolves when a scan is held. */
  holdAfter(after: number): Promise<void> {
    this.#holdAt = this.entries + after;
    return new Promise((resolve) => (this.#onHeld = resolve));
  }

  /** Let the held scan go on. */
  release(): void {
    this.#holdAt = Infinity;
    this.#held?.();
    this.#held = undefined;
  }

  protected override async *_range(space: Space, options: RangeOptions): AsyncIterable<[Buffer, Buffer]> {
    for await (const entry of super._range(space, options)) {
      if (++this.entries >= this.#holdAt) {
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
