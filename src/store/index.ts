/** The event store: public API. */
export {
  EventStore,
  type EventStoreOptions,
  type VerificationOptions,
  type CommitListener,
  AUDIT_TYPE,
  AUDIT_ID,
  STORAGE_LAYOUT,
} from './store.js';
export { takeSnapshot, archiveAggregate, restoreAggregate } from './admin.js';
export { stageEvent, listStaged, commitStaged, commitStagedDetailed, discardStaged } from './stage.js';
export { backupStore, type BackupOptions, type BackupReport } from './backup.js';
export { verifyAggregate, verifyLedger, verifyAll, verifyNamed, type VerifyAllReport } from './verify.js';
export {
  eventInclusionProof,
  aggregateConsistencyProof,
  ledgerConsistencyProof,
  ledgerInclusionProof,
  ledgerEventRef,
} from './proofs.js';
export { type RecordCodec, plainCodec } from './codec.js';
export {
  CLOCK_TOLERANCE_MS,
  type ClockLag,
  type ClockLagListener,
  HighWaterClock,
  clockLagMessage,
} from './clock.js';
export type { AppendValidator } from './tx.js';
export type * from './types.js';
