/**
 * Opening a store with its keys writes nothing unless the keyring changed: every open used to write
 * the keyring back (a synced write: an fsync, and the start of the write thread, for each CLI command,
 * even `aggregate list`).
 */
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { RocksDbEngine } from '../../src/storage/rocksdb/rocksdb-engine.js';
import { openSecureStore } from '../../src/store/secure.js';
import { tempDirs } from '../helpers/temp.js';

const tempDir = tempDirs('edbx-open-');
let dir: string;
beforeEach(async () => {
  dir = await tempDir();
});

/** Open the store at `dir` with `dek`, close it, and answer how many writes the open made. */
async function writesOfOpen(dek: string | undefined): Promise<number> {
  const engine = new RocksDbEngine(dir);
  const write = vi.spyOn(engine, 'write');
  const secure = await openSecureStore(engine, { masterKey: 'mk', dek });
  const writes = write.mock.calls.length;
  await secure.store.close();
  return writes;
}

describe('opening a store', () => {
  it('writes the keyring when the store is new, and nothing when it opens it again', async () => {
    expect(await writesOfOpen('dek-1')).toBeGreaterThan(0); // a new store
    expect(await writesOfOpen('dek-1')).toBe(0);
    expect(await writesOfOpen(undefined)).toBe(0); // the master key alone (`config`)
    expect(await writesOfOpen('dek-1')).toBe(0);
  });
});
