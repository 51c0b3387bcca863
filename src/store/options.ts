/**
 * What an EventStore is opened with (`EventStore.open`): the engine and codec, the bounds on payloads,
 * states and the state cache, verification threads, the acknowledged-head file; and their defaults.
 */
import { availableParallelism } from 'node:os';
import type { StorageEngine } from '../storage/engine.js';
import type { RecordCodec } from './codec.js';
import type { AppendValidator } from './tx.js';

export interface EventStoreOptions {
  readonly engine: StorageEngine;
  readonly codec?: RecordCodec;
  readonly now?: () => Date;
  readonly maxPayloadBytes?: number;
  /** Bound on an aggregate's state in bytes, measured as a payload is (default 16 MiB). */
  readonly maxStateBytes?: number;
  /** Maximum number of aggregate states kept in memory (LRU). */
  readonly memoryThreshold?: number;
  /** Estimated bytes those states may take (stateMemoryBytes); the LRU evicts at whichever is reached. */
  readonly memoryBytes?: number;
  readonly validator?: AppendValidator;
  /** How verification uses worker threads (see verify.ts). */
  readonly verification?: VerificationOptions;
  /** The acknowledged-head file kept beside the engine's (acknowledged.ts); none without it. */
  readonly acknowledgedHead?: AcknowledgedHeadOptions;
}

export interface AcknowledgedHeadOptions {
  readonly file: string;
  readonly intervalMs?: number;
  /** How long a file that could not be written waits before it is tried again (default 2 s). */
  readonly retryMs?: number;
  /**
   * The store is a restored backup (its `backup.json` is there): a file found beside it was left by
   * the store it replaced, so it is written anew from this one.
   */
  readonly restored?: boolean;
}

export interface VerificationOptions {
  /**
   * Worker threads verifying long aggregates. Default: 2, or 1 on a single core; 0 verifies on the
   * calling thread only. Only an engine that can share its database (RocksDB) and a codec that can
   * share its keys use them.
   */
  readonly threads?: number;
  /** Aggregates with fewer events are verified on the calling thread; longer ones are cut into
   * segments of at least this many events, one per thread. Default 10,000. */
  readonly segmentEvents?: number;
}

export const DEFAULT_SEGMENT_EVENTS = 10_000;
/** Verification worker threads by default: two, or one on a single core. */
export const defaultVerifyThreads = (): number => Math.min(2, availableParallelism());

export const DEFAULT_MEMORY_THRESHOLD = 10_000;
/** 256 MiB: a count alone bounds nothing when a state may be a few bytes or tens of megabytes. */
export const DEFAULT_MEMORY_BYTES = 256 * 1024 * 1024;
