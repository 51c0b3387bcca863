/**
 * Storage engines: the interface and its two implementations.
 */
import { err } from '../core/errors.js';
import type { StorageEngine } from './engine.js';
import { MemoryEngine } from './memory/memory-engine.js';
import { RocksDbEngine } from './rocksdb/rocksdb-engine.js';

export { StorageEngine, SPACES, prefixEnd } from './engine.js';
export type { EngineStatus, PinnedRead, RangeOptions, Space, WriteOp, WriteOptions } from './engine.js';
export { MemoryEngine } from './memory/memory-engine.js';
export { RocksDbEngine } from './rocksdb/rocksdb-engine.js';
export type { RocksDbEngineOptions } from './rocksdb/rocksdb-engine.js';

export type EngineKind = 'rocksdb' | 'memory';

/**
 * Create an (unopened) engine. `rocksdb` needs the data dir as `location`; `memory` ignores it.
 *
 * @example
 * const engine = createEngine('rocksdb', '/var/lib/eventdbx/data');
 * await engine.open();
 */
export function createEngine(kind: EngineKind, location?: string): StorageEngine {
  switch (kind) {
    case 'memory':
      return new MemoryEngine();
    case 'rocksdb':
      if (location === undefined || location.length === 0) {
        throw err('EDBX_ERR_INVALID_ARGUMENT', {
          name: 'data dir',
          value: location ?? '',
          reason: 'the rocksdb engine needs a data directory',
        });
      }
      return new RocksDbEngine(location);
    default:
      throw err('EDBX_ERR_INVALID_ARGUMENT', {
        name: 'engine',
        value: kind,
        reason: "use 'rocksdb' or 'memory'",
      });
  }
}
