/**
 * The wire protocol of EventDBX's REST API: records, request bodies, envelopes, proofs, checkpoints,
 * problem documents and the event stream format. Shared by the server and the client SDK.
 */
export type {
  AggregateSummary,
  AggregateView,
  AuditStateReport,
  AuditVerification,
  EventIssuer,
  EventMetadata,
  EventRecord,
  Health,
  HealthDegraded,
  HealthFailing,
  HealthOk,
  IssuedBy,
  Payload,
  IssuedToken,
  SchemaDefinition,
  TokenView,
  VerifyReport,
} from './records.js';
export type {
  AppendBody,
  AuditQuery,
  ListAggregatesQuery,
  PageQuery,
  PayloadInput,
  SchemaAlterBody,
  SchemaCreateBody,
  StreamQuery,
  TokenCreateBody,
  TransactionBody,
  TransactionEvent,
} from './requests.js';
export type {
  AuditAction,
  BackupTakenPayload,
  CommandRunPayload,
  ServerStartedPayload,
  StoreRestoredPayload,
} from './audit.js';
export type {
  AggregatePage,
  AuditPage,
  EventPage,
  RecentEvents,
  SchemaHistory,
  SchemaList,
  TokenPage,
  TransactionResult,
  WithheldAuditEntry,
} from './responses.js';
export {
  CHECKPOINT_ORIGIN,
  type CheckpointView,
  type ConsistencyProof,
  type InclusionProof,
} from './proofs.js';
export {
  ERROR_CODES,
  PROBLEM_CONTENT_TYPE,
  type ErrorCode,
  type EventRef,
  type Problem,
  type ProblemMembersByCode,
  type ProblemOf,
  type ServerErrorCode,
  isProblem,
} from './problem.js';
export { PATHS } from './paths.js';
export {
  PLUGIN_KINDS,
  type DeadLetter,
  type DeadLetterPage,
  type DeliveryError,
  type DeliveryOptions,
  type Mappings,
  type OnFailure,
  type PluginKind,
  type PluginList,
  type PluginStatus,
  type PluginStatusList,
  type PluginView,
  type ReplayResult,
  type RetryOutcome,
  type RetryResult,
  type TypeMap,
} from './plugins.js';
export { leafBytes } from './leaf.js';
export { SHAPES, type Shape } from './shapes.js';
export {
  SSE_CONTENT_TYPE,
  STREAM_CAUGHT_UP,
  STREAM_ERROR,
  STREAM_EVENT,
  type SseMessage,
  SseParser,
  formatComment,
  formatSse,
} from './sse.js';
