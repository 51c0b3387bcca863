/** RocksDB for tests: edited directly, as someone with the files (but not the keys) could, or counted. */
import { RocksDbEngine } from '../../src/storage/rocksdb/rocksdb-engine.js';
import type { RangeOptions, Space } from '../../src/storage/engine.js';

/** Open the data dir's engine, run `fn` on it, close it. */
export async function editEngine(dir: string, fn: (engine: RocksDbEngine) => Promise<void>): Promise<void> {
  const engine = new RocksDbEngine(dir);
  await engine.open();
  try {
    await fn(engine);
  } finally {
    await engine.close();
  }
}

/**
 * RocksDB that counts the entries its scans hand over, by key tag (`M` metas, `E` events…): tests
 * check what a read touched, not how long it took.
 */
export class CountingRocksDbEngine extends RocksDbEngine {
  /** Entries (key and value) handed over by `range`, by tag. */
  readonly entries = new Map<string, number>();
  /** Keys handed over by `keyChunks`, by tag. */
  readonly keys = new Map<string, number>();
  /** Called with every entry `range` hands over, before the reader gets it. */
  onEntry: ((key: Buffer) => void) | undefined;

  reset(): void {
    this.entries.clear();
    this.keys.clear();
  }

  protected override async *_range(space: Space, options: RangeOptions): AsyncIterable<[Buffer, Buffer]> {
    for await (const entry of super._range(space, options)) {
      bump(this.entries, entry[0]);
      this.onEntry?.(entry[0]);
      yield entry;
    }
  }

  protected override async *_keyChunks(space: Space, options: RangeOptions): AsyncIterable<Buffer[]> {
    for await (const chunk of super._keyChunks(space, options)) {
      for (const k of chunk) bump(this.keys, k);
      yield chunk;
    }
  }
}

function bump(counts: Map<string, number>, key: Buffer): void {
  const tag = String.fromCharCode(key[0]!);
  counts.set(tag, (counts.get(tag) ?? 0) + 1);
}
