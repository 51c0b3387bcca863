/**
 * EventDBX embedded in a Node.js process: the event store on an engine (RocksDB, or in memory for
 * tests), with its Merkle proofs and verification. The HTTP client is `eventdbx/client`.
 *
 * @example
 * import { EventStore, RocksDbEngine, verifyAggregate } from 'eventdbx';
 * const store = await EventStore.open({ engine: new RocksDbEngine('./data') });
 * await store.append(
 *   { aggregate_type: 'patient', aggregate_id: 'p-001', event_type: 'patient-added', payload: { name: 'Jane' } },
 *   { issuedBy: { group: 'doctors', user: 'ana' } },
 * );
 * (await verifyAggregate(store, 'patient', 'p-001')).ok; // true
 * await store.close();
 */
export * from './store/index.js';
export {
  StorageEngine,
  MemoryEngine,
  RocksDbEngine,
  createEngine,
  type EngineKind,
  type RocksDbEngineOptions,
} from './storage/index.js';
export { openDataDir, openSecureStore, type SecureStore } from './store/secure.js';
export { EventDbxError, isEventDbxError, type ErrorCode } from './core/errors.js';
export type { EventRecord, Payload } from './core/event.js';
export {
  verifyInclusion,
  verifyConsistency,
  rootFromInclusionProof,
  leafHash,
  nodeHash,
} from './core/merkle/index.js';
export { VERSION } from './version.js';
