import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MemoryEngine } from '../src/storage/memory/memory-engine.js';
import { RocksDbEngine } from '../src/storage/rocksdb/rocksdb-engine.js';
import { storeContract } from './store/contract.js';

storeContract('memory', async () => ({ engine: new MemoryEngine(), cleanup: async () => undefined }));

storeContract('rocksdb', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'edbx-store-'));
  return {
    engine: new RocksDbEngine(dir),
    reopen: () => new RocksDbEngine(dir),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});
