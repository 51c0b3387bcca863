/**
 * The EventDBX TypeScript SDK (`import { EventDbxClient } from 'eventdbx/client'`).
 */
export { EventDbxClient } from './client.js';
export { DEFAULT_URL, type ClientOptions, type CallOptions } from './options.js';
export type { RetryOptions } from './http.js';
export type { SubscribeOptions } from './subscribe.js';
export type { AuditOptions, AuditResult } from './audit.js';
export type { AppendOutcome, TransactionOutcome } from './outcome.js';
export {
  type CheckpointStore,
  type TrustedCheckpoint,
  FileCheckpointStore,
  MemoryCheckpointStore,
} from './trust.js';
export {
  type TreeHead,
  type VerifiedCheckpoint,
  type VerifiedEvent,
  type VerifiedLedgerEvent,
  type VerifiedLedgerInclusion,
  checkAdvance,
  checkCheckpoint,
  checkCheckpointObject,
  checkConsistency,
  checkEventProof,
  checkLedgerInclusion,
} from './verify.js';
export {
  type ApiErrorOf,
  type ClientErrorCode,
  type ErrorCode,
  type VerificationErrorCode,
  CLIENT_ERROR_CODES,
  ERROR_CODES,
  EventDbxApiError,
  EventDbxCancelledError,
  EventDbxClientError,
  EventDbxConfigError,
  EventDbxConnectionError,
  EventDbxResponseError,
  EventDbxVerificationError,
  isApiError,
  isVerificationError,
} from './errors.js';
export type * from '../protocol/index.js';
