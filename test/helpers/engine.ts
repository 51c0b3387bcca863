/** Editing a closed store's RocksDB directly, as someone with the files (but not the keys) could. */
import { RocksDbEngine } from '../../src/storage/rocksdb/rocksdb-engine.js';

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
