/**
 * The event store: appends through the group-commit writer, reads from the engine with an LRU of
 * aggregate states. Pure of transports: the CLI and the server both drive this class. A facade over
 * the modules beside it: options.ts and opening.ts (what it opens with and on), metas.ts (the state
 * cache and its checks), appends.ts and thresholds.ts (writes), event-reads.ts, aggregate-state.ts,
 * listing.ts and log.ts (reads), listeners.ts (who is told of commits).
 *
 * @example
 * const store = await EventStore.open({ engine: new MemoryEngine() });
 * await store.append({ aggregate_type: 'patient', aggregate_id: 'p-001', event_type: 'patient-added',
 *   payload: { name: 'Jane' } }, { issuedBy: { group: 'admin', user: 'jane' } });
 */
import { type EventDbxError, err } from '../core/errors.js';
import type { TokenRecord } from '../core/tokens.js';
import { DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_MAX_STATE_BYTES, type EventRecord } from '../core/event.js';
import { frontierRoot } from '../core/merkle/index.js';
import { aggregateId, aggregateType, version as checkVersion } from '../core/names.js';
import type { Space, StorageEngine } from '../storage/engine.js';
import type { AuditAction } from '../protocol/audit.js';
import { type RecordCodec, type SharedCodec, plainCodec } from './codec.js';
import { type VerifyPool, VerifyWorkers } from './verify-pool.js';
import { type AcknowledgedHeadFile, keepAcknowledgedHead } from './acknowledged.js';
import { type AggregateOptions, aggregateIn, snapshotsIn } from './aggregate-state.js';
import { HighWaterClock } from './clock.js';
import { appendIn, prefetchOf, refusalOf } from './appends.js';
import { AUDIT_ID, AUDIT_TYPE, auditEntries } from './audit-log.js';
import { type ReadEventsOptions, eventIn, eventsByIds, scanEventRange, spaceOf } from './event-reads.js';
import { type CommitListener, CommitListeners } from './listeners.js';
import { type ListOptions, countAggregates, listAggregates } from './listing.js';
import { readLogOnce, scanLogOnce } from './log.js';
import { Metas } from './metas.js';
import { Moves, movesAggregate } from './moves.js';
import {
  STORAGE_LAYOUT,
  type StoredHead,
  ledgerHeadProblem,
  loadTokens,
  newestRecordedTime,
  openStoredHead,
} from './opening.js';
import type { EventStoreOptions } from './options.js';
import { SnapshotThresholds } from './thresholds.js';
import type { MoveWatch } from './verify-segment.js';
import * as K from './keys.js';
import type { AppendValidator, LiveMeta, TxEnv, WriteTx } from './tx.js';
import type {
  AggregateSummary,
  AggregateView,
  AppendRequest,
  LogScan,
  SnapshotRecord,
  WriteContext,
} from './types.js';
import { type Prefetch, Writer } from './writer.js';

export {
  type AcknowledgedHeadOptions,
  DEFAULT_MEMORY_BYTES,
  DEFAULT_MEMORY_THRESHOLD,
  type EventStoreOptions,
  type VerificationOptions,
  defaultVerifyThreads,
} from './options.js';
export { AUDIT_ID, AUDIT_TYPE } from './audit-log.js';
export type { ReadEventsOptions } from './event-reads.js';
export type { CommitListener } from './listeners.js';
export { STORAGE_LAYOUT } from './opening.js';

export class EventStore {
  readonly engine: StorageEngine;
  readonly env: TxEnv;
  /**
   * The clock every recorded time comes from (`env.now`): the wall clock (`options.now`), held at the
   * newest time recorded while the wall clock is behind it (clock.ts). `clock.onLag` tells of that.
   */
  readonly clock: HighWaterClock;
  /** The metas served: cached, and checked against the events (metas.ts). */
  readonly #metas: Metas;
  readonly #writer: Writer;
  readonly #listeners = new CommitListeners();
  #writeFailure: (e: EventDbxError) => void = () => undefined;
  readonly #thresholds: SnapshotThresholds;
  #validator: AppendValidator | undefined;
  readonly #verifyWorkers: VerifyWorkers;
  /**
   * Why the audit log cannot be trusted: shorter than the ledger head says (ledger-head.ts). Reads of
   * it and appends to it are refused; other aggregates are not concerned.
   */
  readonly #auditProblem: EventDbxError | undefined;
  /** Archives and restores: a read that finds data missing tells a move from damage by them. */
  readonly #moves = new Moves();

  /** Why the audit log cannot be trusted (undefined when its length is what the ledger head records). */
  get auditProblem(): EventDbxError | undefined {
    return this.#auditProblem;
  }

  /** Keeps the acknowledged-head file (undefined without one, or when a loss was found). */
  #acknowledged: AcknowledgedHeadFile | undefined;
  /**
   * Events acknowledged before the store was last closed that it no longer holds, or an
   * acknowledged-head file that does not open (acknowledged.ts): writes are refused, verify fails.
   */
  #loss: EventDbxError | undefined;

  /** Why the store is not what it had acknowledged (undefined when it holds all it did). */
  get acknowledgedLoss(): EventDbxError | undefined {
    return this.#loss;
  }

  /**
   * Why the store serves, writes included, but not as it should, so an operator must act: a read met
   * damaged files (the engine's `damage`), or the acknowledged-head file cannot be written (writes
   * acknowledged since are not covered by its check). Undefined while neither holds.
   */
  get degradation(): EventDbxError | undefined {
    return this.engine.damage ?? this.acknowledgedHeadFailure;
  }

  /** Why the acknowledged-head file cannot be written (EDBX_ERR_ACKNOWLEDGED_HEAD), or undefined. */
  get acknowledgedHeadFailure(): EventDbxError | undefined {
    return this.#acknowledged?.failure;
  }

  /**
   * Told of each change of the acknowledged-head file: it cannot be written (the error), or is written
   * again (undefined); at once when it already cannot be.
   */
  onAcknowledgedHeadChange(listener: (failure: EventDbxError | undefined) => void): void {
    this.#acknowledged?.onChange(listener);
    const failure = this.#acknowledged?.failure;
    if (failure) listener(failure);
  }

  /** Committed token records by hash (few; kept in memory, persisted under K keys). */
  readonly tokens = new Map<string, TokenRecord>();

  /**
   * Token records loaded that the audit log does not vouch for (see `distrustTokens`): refused until an
   * admin refreshes or revokes them, which stores a new record (one the log vouches for).
   */
  readonly distrusted = new WeakSet<TokenRecord>();

  private constructor(options: EventStoreOptions, stored: StoredHead) {
    this.engine = options.engine;
    this.#validator = options.validator;
    this.#thresholds = new SnapshotThresholds(stored.thresholds);
    this.#auditProblem = stored.auditProblem;
    this.#verifyWorkers = new VerifyWorkers(options.verification);
    const clock = (this.clock = new HighWaterClock(options.now ?? (() => new Date())));
    this.env = {
      codec: options.codec ?? plainCodec,
      now: () => clock.now(),
      maxPayloadBytes: options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES,
      maxStateBytes: options.maxStateBytes ?? DEFAULT_MAX_STATE_BYTES,
      validator: (req, current) => this.#validator?.(req, current),
      snapshotThreshold: (type) => this.#thresholds.of(type),
    };
    this.#metas = new Metas(this.engine, this.env, options, () => this.#auditProblem);
    this.#writer = new Writer(
      this.engine,
      this.env,
      {
        loadMetas: (aggs) => this.#metas.loadChecked(aggs),
        loadByEventId: (ids) => eventsByIds(this, ids),
        committed: (metas, records, tokens) => {
          this.#metas.committed(metas);
          this.#acknowledged?.committed();
          // Stamped by the clock already; said again so that no commit can leave a time behind it.
          const last = records.at(-1);
          if (last) clock.advance(last.metadata.created_at);
          for (const t of tokens.values()) this.tokens.set(t.hash, t);
          this.#listeners.committed(records);
        },
        failed: (e) => this.#writeFailure(e),
        written: (seconds) => this.#listeners.written(seconds),
      },
      stored.ledger.size,
      stored.ledger,
      stored.auditVersion,
    );
  }

  static async open(options: EventStoreOptions): Promise<EventStore> {
    const store = new EventStore(options, await openStoredHead(options));
    // Times recorded from now on are never earlier than the newest one stored (a restart, or a CLI
    // opening the store, with a clock behind the times it holds).
    store.clock.advance((await newestRecordedTime(store)) ?? Number.NEGATIVE_INFINITY);
    // Read now: a clock already behind is reported to whoever listens (clock.onLag) from the start.
    store.clock.behindMs();
    await loadTokens(store);
    // A ledger head its entries do not back (edited, or rolled back) must not be built on: every
    // append would extend a wrong tree. Reads still work; writes are refused, and /health says so.
    const problem = await ledgerHeadProblem(store);
    if (problem) store.#writer.refuse(problem);
    if (options.acknowledgedHead) {
      const found = await keepAcknowledgedHead(options.acknowledgedHead, () => store.ledgerHead());
      if ('loss' in found) store.#writer.refuse((store.#loss = found.loss));
      else store.#acknowledged = found.kept;
    }
    return store;
  }

  async close(): Promise<void> {
    await this.#writer.idle();
    await this.#acknowledged?.close();
    // Verification workers stop (between chunks) before the database closes: the engine asks them.
    await this.engine.close();
  }

  /**
   * The verification worker threads and the codec they open values with; undefined when verification
   * stays on this thread (turned off, an engine that cannot share its database, a codec that cannot
   * share its keys). Started on first use.
   */
  verifyWorkers(): { pool: VerifyPool; codec: SharedCodec; segmentEvents: number } | undefined {
    return this.#verifyWorkers.of(this.engine, this.env.codec);
  }

  /** Replace the append validator (schemas); applies to the next append the writer runs. */
  setValidator(v: AppendValidator | undefined): void {
    this.#validator = v;
  }

  /** Switch the codec for new writes (DEK rotation); the new codec must still open older records. */
  replaceCodec(codec: RecordCodec): void {
    this.env.codec = codec;
  }

  /** Where failures of commit listeners are reported (default: a process warning). */
  onListenerError(report: (e: unknown) => void): void {
    this.#listeners.onError(report);
  }

  /**
   * Why this store refuses every write: a write failed (disk full, I/O error), and what it left on disk
   * is unknown until the store is reopened. Undefined while writes go through.
   */
  get writeFailure(): EventDbxError | undefined {
    return this.#writer.failure;
  }

  /**
   * Told once, when a failed write makes the store refuse every further write (see writeFailure); at
   * once when it already refuses them (what it found on opening: events it acknowledged are gone, a
   * ledger head its entries do not back).
   */
  onWriteFailure(report: (e: EventDbxError) => void): void {
    this.#writeFailure = report;
    const failure = this.#writer.failure;
    if (failure) report(failure);
  }

  onCommit(listener: CommitListener): () => void {
    return this.#listeners.onCommit(listener);
  }

  /**
   * Told after each durable batch (one write and fsync, shared by every append of the batch) how many
   * seconds the engine took to write it; returns the function that stops telling. For metrics.
   */
  onBatchWritten(listener: (seconds: number) => void): () => void {
    return this.#listeners.onBatchWritten(listener);
  }

  get writerStats(): Readonly<{ batches: number; events: number; jobs: number }> {
    return this.#writer.stats;
  }

  /** The store's storage layout: this build's STORAGE_LAYOUT (`open` refuses any other). */
  get layout(): number {
    return STORAGE_LAYOUT;
  }

  /** Number of events in the store (= the ledger tree size = the last position). */
  get size(): number {
    return this.#writer.committedPosition;
  }

  /**
   * The audit log's version (its length) as of the last commit. Read in `atRest`, it is the version
   * the records the log vouches for (tokens, schemas, plugins, archive states) are at.
   */
  get auditVersion(): number {
    return this.#writer.committedAuditVersion;
  }

  /**
   * The audit log's version while no batch that changes it is prepared or being written (so the
   * records it vouches for are on disk as of that version); undefined while one is (audit-point.ts).
   */
  get settledAuditVersion(): number | undefined {
    const committed = this.#writer.committedAuditVersion;
    return this.#writer.preparedAuditVersion === committed ? committed : undefined;
  }

  ledgerHead(): { size: number; root: string } {
    const l = this.#writer.committedLedger;
    return { size: l.size, root: frontierRoot(l).toString('hex') };
  }

  // ---------------------------------------------------------------- writes

  /** Append one event durably. Retrying with the same `event_id` returns the original record. */
  async append(req: AppendRequest, ctx: WriteContext): Promise<EventRecord> {
    const [r] = await this.appendMany([req], ctx);
    return r!;
  }

  /** Append events to one or more aggregates atomically: all are written, or none. */
  async appendMany(reqs: readonly AppendRequest[], ctx: WriteContext): Promise<EventRecord[]> {
    return (await this.appendDetailed(reqs, ctx)).map((r) => r.record);
  }

  /**
   * Like appendMany, also telling which records are idempotent replays of earlier appends. With
   * `nameEvents` (a transaction's events, `POST /v1/transactions`), a refusal about one event names it:
   * its message starts `events[1] (patient/p-031): ` and the error's `event` says the same.
   */
  appendDetailed(
    reqs: readonly AppendRequest[],
    ctx: WriteContext,
    options: { readonly nameEvents?: boolean } = {},
  ): Promise<Array<{ record: EventRecord; duplicate: boolean }>> {
    if (reqs.length === 0) return Promise.reject(err('EDBX_ERR_EMPTY_TRANSACTION'));
    const refused = refusalOf(reqs, options.nameEvents === true);
    let prefetch: Prefetch;
    try {
      prefetch = prefetchOf(reqs, refused);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#writer.submit(prefetch, (tx) => appendIn(this, tx, reqs, ctx, refused));
  }

  /** Run an exclusive write job (admin operations): it runs alone and may read while it runs. */
  exclusive<T>(
    aggregates: ReadonlyArray<readonly [string, string]>,
    run: (tx: WriteTx) => Promise<T>,
  ): Promise<T> {
    let settle: (() => void) | undefined;
    const done = this.#writer.submit(
      { aggregates, eventIds: [] },
      async (tx) => {
        const value = await run(tx);
        // Counted before the batch is written: a read that misses what the write moves sees it begun.
        if (movesAggregate(tx)) settle = this.#moves.begin();
        return value;
      },
      true,
    );
    // Settled once its callers may see it: written and published (metas cached), or refused.
    return done.finally(() => settle?.());
  }

  /**
   * Run `fn` at a point no commit lands in: as an exclusive writer job, after every earlier batch has
   * committed and before any later one is written (a backup pins its reads there). It must not await:
   * writers stall while it runs. A store that refuses writes lands none, and runs it at once.
   */
  atRest<T>(fn: () => T): Promise<T> {
    if (this.#writer.failure) return Promise.resolve().then(fn);
    return this.#writer.submit({ aggregates: [], eventIds: [] }, async () => fn(), true);
  }

  /** Append to the store's own Merkle-protected audit log, inside a running transaction. */
  audit(tx: WriteTx, ctx: WriteContext, action: AuditAction, details: Record<string, string>): EventRecord {
    return tx.append(
      { aggregate_type: AUDIT_TYPE, aggregate_id: AUDIT_ID, event_type: action, payload: details },
      ctx,
      { system: true },
    ).record;
  }

  /** Set the automatic snapshot threshold of an aggregate type (0 = off). Schemas drive this. */
  async setSnapshotThreshold(type: string, every: number, ctx: WriteContext): Promise<void> {
    await this.#thresholds.set(this, type, every, ctx);
  }

  /**
   * Use these thresholds from now on without writing them: the ones the schemas (the audited source)
   * give, whatever the stored copy says (`audit verify` reports the difference).
   */
  useSnapshotThresholds(derived: ReadonlyMap<string, number>): void {
    this.#thresholds.use(derived);
  }

  snapshotThreshold(type: string): number {
    return this.#thresholds.of(type);
  }

  // ---------------------------------------------------------------- reads

  /**
   * Committed meta of an aggregate (stub without state when archived), or null. A meta read from disk
   * that the store's events contradict (rolled back or removed behind the store's back) is refused
   * with EDBX_ERR_INTEGRITY rather than served as a shorter history (see Metas.loadChecked).
   */
  async meta(type: string, id: string): Promise<LiveMeta | null> {
    const [m] = await this.#metas.loadChecked([[type, id]]);
    if (m instanceof Error) throw m;
    return m ?? null;
  }

  /**
   * The meta as stored, not checked against the events: for verification, which checks it in full and
   * reports what it finds instead of refusing.
   */
  async storedMeta(type: string, id: string): Promise<LiveMeta | null> {
    const [m] = await this.#metas.loadLive([[type, id]]);
    return m ?? null;
  }

  /**
   * Whether events of an aggregate are stored (in either keyspace) — asked when its meta is missing: a
   * meta removed from under its events is damage to report, not an aggregate that does not exist.
   */
  async storesEventsOf(type: string, id: string): Promise<boolean> {
    const key = K.eventKey(type, id, 1);
    return (
      (await this.engine.get('main', key)) !== undefined ||
      (await this.engine.get('archive', key)) !== undefined
    );
  }

  /**
   * Run `read` of an aggregate's events, Merkle nodes or snapshots in the keyspace its meta names.
   * Archive and restore move them between keyspaces: a read that took the keyspace before a move and
   * read after it finds nothing there, which is not damage. It runs again in the keyspace the meta
   * names then (moves.ts); what is missing without a move is reported as it was found.
   *
   * @example
   * const first = await store.readAggregate('patient', 'p-001', (space) =>
   *   store.readEvents(space, 'patient', 'p-001', { take: 1 }));
   */
  readAggregate<T>(type: string, id: string, read: (space: Space, live: LiveMeta) => Promise<T>): Promise<T> {
    return this.#moves.despite(async () => {
      const { space, live } = await spaceOf(this, type, id);
      return read(space, live);
    });
  }

  /**
   * Watch for archives and restores from now on (see Moves.watch): `raced()` tells whether one was
   * under way or began since, `settled()` waits for those under way, `alone()` runs where none can
   * land. Verification asks, so that a failure a move explains is verified again rather than reported
   * as damage.
   */
  watchMoves(): MoveWatch {
    return {
      raced: this.#moves.watch(),
      settled: () => this.#moves.settled(),
      // An exclusive job runs alone: no archive or restore lands while it runs. A store that refuses
      // writes lands none either (and refuses exclusive jobs).
      alone: <T>(fn: () => Promise<T>) => (this.writeFailure ? fn() : this.exclusive([], fn)),
    };
  }

  /** One event by version. */
  async event(type: string, id: string, version: number): Promise<EventRecord> {
    aggregateType(type);
    aggregateId(id);
    const v = checkVersion(version);
    return this.readAggregate(type, id, (space, live) => eventIn(this, space, live, type, id, v));
  }

  /** Events of an aggregate in version order (or newest first with `reverse`). */
  async events(type: string, id: string, opts: ReadEventsOptions = {}): Promise<EventRecord[]> {
    aggregateType(type);
    aggregateId(id);
    return this.readAggregate(type, id, (space, live) => {
      const last = Math.min(opts.toVersion ?? live.meta.version, live.meta.version);
      return this.readEvents(space, type, id, { ...opts, toVersion: last });
    });
  }

  /**
   * Range read of events without existence checks on the aggregate. The versions read must follow
   * each other without a gap (and, with a known `toVersion`, reach it): a missing event is an
   * integrity error, never a shorter history served as complete.
   */
  async readEvents(
    space: Space,
    type: string,
    id: string,
    opts: ReadEventsOptions = {},
  ): Promise<EventRecord[]> {
    const out: EventRecord[] = [];
    for await (const chunk of this.scanEvents(space, type, id, opts)) {
      for (const e of chunk) out.push(e);
    }
    return out;
  }

  /**
   * `readEvents` a chunk at a time, with the same checks: a caller that folds or streams the chunks
   * as they come holds one chunk, not the whole range. A gap is refused when it is met, so a caller
   * may have consumed earlier chunks before the error: it must not use what it built from them.
   */
  scanEvents(
    space: Space,
    type: string,
    id: string,
    opts: ReadEventsOptions = {},
  ): AsyncGenerator<EventRecord[]> {
    return scanEventRange(this, space, type, id, opts);
  }

  /** State of an aggregate now, or at `version` (rebuilt from the nearest snapshot at or below it). */
  async aggregate(type: string, id: string, opts: AggregateOptions = {}): Promise<AggregateView> {
    aggregateType(type);
    aggregateId(id);
    return this.readAggregate(type, id, (space, live) => aggregateIn(this, space, live, type, id, opts));
  }

  /** Snapshots of an aggregate, oldest first. */
  async snapshots(type: string, id: string): Promise<SnapshotRecord[]> {
    aggregateType(type);
    aggregateId(id);
    return this.readAggregate(type, id, (space, live) => snapshotsIn(this, space, live, type, id));
  }

  /** How many aggregates the store holds (system ones with `includeSystem`), without decoding them. */
  async countAggregates(
    opts: { includeSystem?: boolean; signal?: AbortSignal | undefined } = {},
  ): Promise<number> {
    return countAggregates(this, opts);
  }

  /**
   * Aggregates in key order. `after` is an exclusive cursor (`type/id` of the last item seen).
   * System aggregates (types starting with '$') are listed only with `includeSystem`. With `scopes`
   * (a token's `type` and `type/id` patterns) only the aggregates they cover are listed, and only
   * their key ranges are read: a token scoped to one aggregate costs one lookup, not a scan.
   */
  async list(opts: ListOptions = {}): Promise<AggregateSummary[]> {
    return listAggregates(this, (type, id, version) => this.#metas.vouches(type, id, version), opts);
  }

  /** Committed events in position order starting at `from` (1-based), across aggregates. */
  async readLog(from: number, limit: number): Promise<EventRecord[]> {
    // The metas name the keyspace of each event: an archive or restore may move some meanwhile.
    return this.#moves.despite(() => readLogOnce(this, this.#metas, from, limit));
  }

  /**
   * The log from `from` through a filter on its ledger entries: up to `limit` positions are examined
   * by their entry alone (it names `type`, `id` and `version` in clear) and only the events `keep`
   * accepts are read and opened, so a reader that may see a few aggregates pays for those, not for
   * the whole log. `next` is the position after the last one examined: where the next scan starts
   * (`from` itself once the log ends). A position missing from the ledger is EDBX_ERR_INTEGRITY.
   *
   * @example
   * const { records, next } = await store.scanLog(1, 512, (ref) => ref.type === 'patient');
   */
  async scanLog(from: number, limit: number, keep: (ref: K.EventRef) => boolean): Promise<LogScan> {
    return this.#moves.despite(() => scanLogOnce(this, this.#metas, from, limit, keep));
  }

  /** The audit log (archive, restore, and later security events), oldest first. */
  async auditLog(
    opts: { skip?: number; take?: number; signal?: AbortSignal | undefined } = {},
  ): Promise<EventRecord[]> {
    return auditEntries(this, opts);
  }

  /** Drop cached state (tests that edit the engine directly use this). */
  clearCache(): void {
    this.#metas.clear();
  }

  /** States in the LRU and their estimated bytes (stateMemoryBytes): what the memory bounds bound. */
  get cached(): { readonly states: number; readonly bytes: number } {
    return this.#metas.cached;
  }
}
