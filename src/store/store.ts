/**
 * The event store: appends through the group-commit writer, reads from the engine with an LRU of
 * aggregate states. Pure of transports: the CLI and the server both drive this class.
 *
 * @example
 * const store = await EventStore.open({ engine: new MemoryEngine() });
 * await store.append({ aggregate_type: 'patient', aggregate_id: 'p-001', event_type: 'patient-added',
 *   payload: { name: 'Jane' } }, { issuedBy: { group: 'admin', user: 'jane' } });
 */
import { availableParallelism } from 'node:os';
import { LRUCache } from 'lru-cache';
import { type EventDbxError, err, isEventDbxError } from '../core/errors.js';
import { type TokenRecord, afterUse, authorize, issuerOf } from '../core/tokens.js';
import {
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_MAX_STATE_BYTES,
  type EventRecord,
  type Payload,
  foldState,
} from '../core/event.js';
import { type Frontier, decodeFrontier, emptyFrontier, frontierRoot } from '../core/merkle/index.js';
import {
  aggregateId,
  aggregateType,
  eventId as checkEventId,
  version as checkVersion,
} from '../core/names.js';
import { type Space, type StorageEngine, prefixEnd } from '../storage/engine.js';
import type { AuditAction } from '../protocol/audit.js';
import { VERSION } from '../version.js';
import { type RecordCodec, type SharedCodec, openJson, plainCodec } from './codec.js';
import { VerifyPool } from './verify-pool.js';
import { openMetaAt, openSnapshotAt } from './bound.js';
import { checkedLedgerHead } from './proofs.js';
import { type LedgerHead, decodeLedgerHead, frontierBytes } from './ledger-head.js';
import { type AcknowledgedHead, AcknowledgedHeadFile, lossOf, readAcknowledgedHead } from './acknowledged.js';
import { openEventAt } from './event-format.js';
import { Moves, movesAggregate } from './moves.js';
import type { MoveWatch } from './verify-segment.js';
import * as K from './keys.js';
import {
  type AppendValidator,
  type LiveMeta,
  type TxEnv,
  type WriteTx,
  aggKey,
  liveMetaBytes,
  refuseMixedRetry,
} from './tx.js';
import type {
  AggregateMeta,
  AggregateSummary,
  AggregateView,
  AppendRequest,
  SnapshotRecord,
  WriteContext,
} from './types.js';
import { type Prefetch, Writer } from './writer.js';

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

const DEFAULT_SEGMENT_EVENTS = 10_000;
/** Verification worker threads by default: two, or one on a single core. */
export const defaultVerifyThreads = (): number => Math.min(2, availableParallelism());

export const DEFAULT_MEMORY_THRESHOLD = 10_000;
/** 256 MiB: a count alone bounds nothing when a state may be a few bytes or tens of megabytes. */
export const DEFAULT_MEMORY_BYTES = 256 * 1024 * 1024;
/** Events decoded per chunk of `scanEvents`: what a streaming reader holds at a time. */
const EVENT_CHUNK = 512;

export const AUDIT_TYPE = '$audit';
export const AUDIT_ID = 'log';

/**
 * A range read of one aggregate's events: versions `fromVersion`..`toVersion`, then `skip` and `take`;
 * `signal` stops it between chunks (a client that went away).
 */
export interface ReadEventsOptions {
  skip?: number;
  take?: number;
  reverse?: boolean;
  fromVersion?: number;
  toVersion?: number;
  signal?: AbortSignal | undefined;
}

export type CommitListener = (records: readonly EventRecord[]) => void;

export class EventStore {
  readonly engine: StorageEngine;
  readonly env: TxEnv;
  readonly #cache: LRUCache<string, LiveMeta>;
  /** Metas the events do not contradict: written by the writer, or read and checked (#loadChecked). */
  readonly #checked = new WeakSet<LiveMeta>();
  readonly #writer: Writer;
  readonly #listeners = new Set<CommitListener>();
  readonly #written = new Set<(seconds: number) => void>();
  #listenerError: (e: unknown) => void = (e) =>
    process.emitWarning(`EventDBX commit listener failed: ${e instanceof Error ? e.message : String(e)}`, {
      code: 'EDBX_LISTENER_FAILED',
    });
  #writeFailure: (e: EventDbxError) => void = () => undefined;
  #thresholds = new Map<string, number>();
  #validator: AppendValidator | undefined;
  readonly #verification: Required<VerificationOptions>;
  #verifyPool: VerifyPool | undefined;
  /** Bumped on every commit, so a read that raced a commit does not cache what it read. */
  #epoch = 0;
  /**
   * Why the audit log cannot be trusted: shorter than the ledger head says (ledger-head.ts). Reads of
   * it and appends to it are refused; other aggregates are not concerned.
   */
  #auditProblem: EventDbxError | undefined;
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

  /** Committed token records by hash (few; kept in memory, persisted under K keys). */
  readonly tokens = new Map<string, TokenRecord>();

  private constructor(
    options: EventStoreOptions,
    ledger: Frontier,
    thresholds: Map<string, number>,
    auditVersion: number,
  ) {
    this.engine = options.engine;
    this.#validator = options.validator;
    this.#thresholds = thresholds;
    this.#verification = {
      threads: options.verification?.threads ?? defaultVerifyThreads(),
      segmentEvents: Math.max(1, options.verification?.segmentEvents ?? DEFAULT_SEGMENT_EVENTS),
    };
    this.env = {
      codec: options.codec ?? plainCodec,
      now: options.now ?? (() => new Date()),
      maxPayloadBytes: options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES,
      maxStateBytes: options.maxStateBytes ?? DEFAULT_MAX_STATE_BYTES,
      validator: (req, current) => this.#validator?.(req, current),
      snapshotThreshold: (type) => this.#thresholds.get(type) ?? 0,
    };
    // A state larger than the whole budget is not cached (lru-cache drops the key, so an older copy
    // is never served): its reads go to the engine.
    this.#cache = new LRUCache({
      max: Math.max(1, options.memoryThreshold ?? DEFAULT_MEMORY_THRESHOLD),
      maxSize: Math.max(1, options.memoryBytes ?? DEFAULT_MEMORY_BYTES),
      sizeCalculation: liveMetaBytes,
    });
    this.#writer = new Writer(
      this.engine,
      this.env,
      {
        loadMetas: (aggs) => this.#loadChecked(aggs),
        loadByEventId: (ids) => this.#loadByEventId(ids),
        committed: (metas, records, tokens) => {
          this.#epoch++;
          this.#acknowledged?.committed();
          for (const t of tokens.values()) this.tokens.set(t.hash, t);
          for (const m of metas) {
            this.#cache.set(aggKey(m.meta.aggregate_type, m.meta.aggregate_id), m);
            this.#checked.add(m);
          }
          if (records.length > 0) {
            for (const l of this.#listeners) {
              // A failing listener (a subscriber, a plugin queue) must not stop the others or the
              // writer: what it missed is still in the store.
              try {
                l(records);
              } catch (e) {
                this.#listenerError(e);
              }
            }
          }
        },
        failed: (e) => this.#writeFailure(e),
        written: (seconds) => {
          for (const l of this.#written) l(seconds);
        },
      },
      ledger.size,
      ledger,
      auditVersion,
    );
  }

  static async open(options: EventStoreOptions): Promise<EventStore> {
    await options.engine.open();
    const raw = await options.engine.get('main', K.globalKey('ledger'));
    let head: LedgerHead = { ledger: emptyFrontier, audit: undefined };
    let trailerProblem: EventDbxError | undefined;
    try {
      if (raw) head = decodeLedgerHead(options.codec ?? plainCodec, raw);
    } catch (e) {
      // An audit trailer that does not open, or belongs to another head: the tree itself still reads.
      if (!isEventDbxError(e, 'EDBX_ERR_INTEGRITY') || !raw) throw e;
      head = { ledger: decodeFrontier(raw.subarray(0, frontierBytes(raw))), audit: undefined };
      trailerProblem = e;
    }
    const ledger = head.ledger;
    await checkLayout(options.engine, ledger.size);
    const t = await options.engine.get('main', K.globalKey('snapshot-thresholds'));
    const thresholds = new Map<string, number>(
      t ? Object.entries(JSON.parse(t.toString('utf8')) as object) : [],
    );
    // The audit log's length as the stored meta says it; the head's trailer says what it must be.
    const auditMeta = await options.engine.get('main', K.metaKey(AUDIT_TYPE, AUDIT_ID));
    const logged = auditMeta
      ? openMetaAt(options.codec ?? plainCodec, auditMeta, AUDIT_TYPE, AUDIT_ID).version
      : 0;
    const store = new EventStore(options, ledger, thresholds, head.audit ?? logged);
    store.#auditProblem =
      trailerProblem ??
      (head.audit !== undefined && head.audit !== logged
        ? err('EDBX_ERR_INTEGRITY', {
            where: 'the audit log',
            reason: `the ledger head records ${head.audit} audit entries but the log holds ${logged} (entries cut off, or its meta put back?); run \`eventdbx aggregate verify\``,
          })
        : undefined);
    for await (const [, v] of options.engine.range('main', {
      gte: K.tokenPrefix(),
      lt: prefixEnd(K.tokenPrefix()),
    })) {
      const t = openJson<TokenRecord>(store.env.codec, v, 'token record');
      store.tokens.set(t.hash, t);
    }
    // A ledger head its entries do not back (edited, or rolled back) must not be built on: every
    // append would extend a wrong tree. Reads still work; writes are refused, and /health says so.
    const problem = await ledgerHeadProblem(store);
    if (problem) store.#writer.refuse(problem);
    if (options.acknowledgedHead) await store.#keepAcknowledged(options.acknowledgedHead);
    return store;
  }

  /** Compare the store with its acknowledged-head file, and keep the file from now on if it holds all. */
  async #keepAcknowledged({ file, intervalMs, restored }: AcknowledgedHeadOptions) {
    let found: AcknowledgedHead | undefined;
    try {
      found = restored ? undefined : await readAcknowledgedHead(file);
      this.#loss = found && lossOf(file, found, this.ledgerHead());
    } catch (e) {
      if (!isEventDbxError(e, 'EDBX_ERR_INTEGRITY')) throw e;
      this.#loss = e;
    }
    // The file stays as it is while it says more than the store holds: it is the evidence.
    if (this.#loss) return this.#writer.refuse(this.#loss);
    this.#acknowledged = await AcknowledgedHeadFile.start(file, () => this.ledgerHead(), found, intervalMs);
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
    const codec = this.env.codec.share?.();
    const { threads, segmentEvents } = this.#verification;
    if (threads < 1 || codec === undefined || this.engine.status !== 'open') return undefined;
    if (this.#verifyPool === undefined) {
      const handle = this.engine.shareHandle(() => this.#verifyPool?.close() ?? Promise.resolve());
      if (handle === undefined) return undefined;
      this.#verifyPool = new VerifyPool(handle, threads);
    }
    return { pool: this.#verifyPool, codec, segmentEvents };
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
    this.#listenerError = report;
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
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Told after each durable batch (one write and fsync, shared by every append of the batch) how many
   * seconds the engine took to write it; returns the function that stops telling. For metrics.
   */
  onBatchWritten(listener: (seconds: number) => void): () => void {
    this.#written.add(listener);
    return () => this.#written.delete(listener);
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

  /** Like appendMany, also telling which records are idempotent replays of earlier appends. */
  appendDetailed(
    reqs: readonly AppendRequest[],
    ctx: WriteContext,
  ): Promise<Array<{ record: EventRecord; duplicate: boolean }>> {
    if (reqs.length === 0) return Promise.reject(err('EDBX_ERR_EMPTY_TRANSACTION'));
    let prefetch: Prefetch;
    try {
      prefetch = prefetchOf(reqs);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#writer.submit(prefetch, (tx) => {
      const token = ctx.tokenHash === undefined ? undefined : tx.token(ctx.tokenHash, this.tokens);
      if (ctx.tokenHash !== undefined && !token) throw err('EDBX_ERR_TOKEN_UNKNOWN');
      const now = this.env.now();
      if (token) {
        for (const r of reqs) {
          authorize(token, now, {
            write: true,
            aggregate: { type: r.aggregate_type, id: r.aggregate_id },
            allowanceChecked: 'by-transaction',
          });
        }
      }
      // The token charged is the one the events record: its person and its id.
      const by = token ? { ...ctx, issuedBy: issuerOf(token) } : ctx;
      const results = reqs.map((r) => tx.append(r, by, { laterIdConflict: true }));
      refuseMixedRetry(results);
      const wrote = results.filter((r) => !r.duplicate).length;
      if (token && token.remaining !== null && wrote > token.remaining) {
        throw err('EDBX_ERR_TOKEN_EXHAUSTED', {
          id: token.id,
          limit: token.limit,
          ...(token.remaining === 0 ? {} : { remaining: token.remaining, needed: wrote }),
        });
      }
      // Only where the events would otherwise be written: the answer then tells no more about other
      // aggregates than an unused id's would, short of writing (the job's refusal undoes its appends).
      const elsewhere = results.find((r) => r.usedElsewhere !== undefined);
      if (elsewhere) throw err('EDBX_ERR_EVENT_ID_CONFLICT', { event_id: elsewhere.usedElsewhere });
      const used = token && afterUse(token, now, wrote);
      if (used && used !== token) tx.setToken(used);
      return results;
    });
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
    aggregateType(type);
    if (!Number.isSafeInteger(every) || every < 0) {
      throw err('EDBX_ERR_INVALID_ARGUMENT', {
        name: 'snapshot threshold',
        value: every,
        reason: 'use a whole number >= 0',
      });
    }
    await this.exclusive([[AUDIT_TYPE, AUDIT_ID]], async (tx) => {
      const next = new Map(this.#thresholds);
      if (every === 0) next.delete(type);
      else next.set(type, every);
      tx.put(K.globalKey('snapshot-thresholds'), Buffer.from(JSON.stringify(Object.fromEntries(next))));
      this.audit(tx, ctx, 'snapshot-threshold-set', { aggregate_type: type, every: String(every) });
      tx.afterCommit(() => (this.#thresholds = next));
    });
  }

  /**
   * Use these thresholds from now on without writing them: the ones the schemas (the audited source)
   * give, whatever the stored copy says (`audit verify` reports the difference).
   */
  useSnapshotThresholds(derived: ReadonlyMap<string, number>): void {
    const next = new Map(this.#thresholds);
    for (const [type, every] of derived) {
      if (every === 0) next.delete(type);
      else next.set(type, every);
    }
    this.#thresholds = next;
  }

  snapshotThreshold(type: string): number {
    return this.#thresholds.get(type) ?? 0;
  }

  // ---------------------------------------------------------------- reads

  /**
   * Committed meta of an aggregate (stub without state when archived), or null. A meta read from disk
   * that the store's events contradict (rolled back or removed behind the store's back) is refused
   * with EDBX_ERR_INTEGRITY rather than served as a shorter history (see #loadChecked).
   */
  async meta(type: string, id: string): Promise<LiveMeta | null> {
    const [m] = await this.#loadChecked([[type, id]]);
    if (m instanceof Error) throw m;
    return m ?? null;
  }

  /**
   * The meta as stored, not checked against the events: for verification, which checks it in full and
   * reports what it finds instead of refusing.
   */
  async storedMeta(type: string, id: string): Promise<LiveMeta | null> {
    const [m] = await this.#loadLive([[type, id]]);
    return m ?? null;
  }

  async #loadLive(aggs: ReadonlyArray<readonly [string, string]>): Promise<(LiveMeta | null)[]> {
    const out: (LiveMeta | null)[] = new Array(aggs.length).fill(null);
    const missing: number[] = [];
    aggs.forEach(([t, i], n) => {
      const hit = this.#cache.get(aggKey(t, i));
      if (hit) out[n] = hit;
      else missing.push(n);
    });
    if (missing.length === 0) return out;
    const epoch = this.#epoch;
    const values = await this.engine.getMany(
      'main',
      missing.map((n) => K.metaKey(aggs[n]![0], aggs[n]![1])),
    );
    missing.forEach((n, j) => {
      const v = values[j];
      if (!v) return;
      const [t, i] = aggs[n]!;
      const meta = openMetaAt(this.env.codec, v, t, i);
      const live = liveOf(meta);
      out[n] = live;
      if (epoch === this.#epoch && !meta.archived) this.#cache.set(aggKey(t, i), live);
    });
    return out;
  }

  /**
   * Metas checked against the events: nothing stored is ever overwritten, so the event after a meta's
   * recorded version must not exist (it would if the meta were rolled back or removed). Each meta read
   * from disk is checked once (one more point read); metas the writer wrote need none. An aggregate
   * that fails gets the integrity error in its place: reads refuse it, and so do appends.
   */
  async #loadChecked(
    aggs: ReadonlyArray<readonly [string, string]>,
  ): Promise<(LiveMeta | null | EventDbxError)[]> {
    const lives = await this.#loadLive(aggs);
    const out: (LiveMeta | null | EventDbxError)[] = lives.slice();
    // An audit log cut short is neither read nor appended to: a new entry would paper over the cut.
    const cut = (n: number) => this.#auditProblem && aggs[n]![0] === AUDIT_TYPE && aggs[n]![1] === AUDIT_ID;
    lives.forEach((_, n) => {
      if (cut(n)) out[n] = this.#auditProblem!;
    });
    const unchecked = lives.flatMap((l, n) => ((l === null || !this.#checked.has(l)) && !cut(n) ? [n] : []));
    if (unchecked.length === 0) return out;
    const next = (n: number) => (lives[n]?.meta.version ?? 0) + 1;
    // An archived aggregate's events are in the archive keyspace: its stub is checked against them.
    const contradicted: number[] = [];
    for (const space of ['main', 'archive'] as const) {
      const here = unchecked.filter((n) => (lives[n]?.meta.archived ? 'archive' : 'main') === space);
      if (here.length === 0) continue;
      const found = await this.engine.getMany(
        space,
        here.map((n) => K.eventKey(aggs[n]![0], aggs[n]![1], next(n))),
      );
      here.forEach((n, j) => {
        const live = lives[n];
        if (found[j] === undefined) {
          if (live) this.#checked.add(live);
        } else contradicted.push(n);
      });
    }
    if (contradicted.length === 0) return out;
    // A reader may have read the meta just before a commit of the next event: the meta on disk has
    // moved on since, and the writer vouches for what it wrote. Still the old version: tampered.
    const again = await this.engine.getMany(
      'main',
      contradicted.map((n) => K.metaKey(aggs[n]![0], aggs[n]![1])),
    );
    contradicted.forEach((n, j) => {
      const [type, id] = aggs[n]!;
      const v = again[j];
      const meta = v ? openMetaAt(this.env.codec, v, type, id) : undefined;
      if (meta && meta.version >= next(n)) {
        const live = liveOf(meta);
        this.#checked.add(live);
        out[n] = live;
        return;
      }
      out[n] = err('EDBX_ERR_INTEGRITY', {
        where: `aggregate ${type}/${id}`,
        reason: `event ${next(n)} is stored but the aggregate records version ${next(n) - 1}; run \`eventdbx aggregate verify\``,
      });
    });
    return out;
  }

  async #loadByEventId(ids: readonly string[]): Promise<(EventRecord | null)[]> {
    if (ids.length === 0) return [];
    const refs = await this.engine.getMany('main', ids.map(K.idempotencyKey));
    return Promise.all(
      refs.map(async (r) => {
        if (!r) return null;
        const ref = K.decodeRef(r);
        return this.#eventAt(ref.type, ref.id, ref.version);
      }),
    );
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

  async #spaceOf(type: string, id: string): Promise<{ space: Space; live: LiveMeta }> {
    const live = await this.meta(type, id);
    if (!live && (await this.storesEventsOf(type, id)))
      throw err('EDBX_ERR_INTEGRITY', {
        where: `aggregate ${type}/${id}`,
        reason: 'its meta is missing but its events are stored; run `eventdbx aggregate verify`',
      });
    if (!live) throw err('EDBX_ERR_AGGREGATE_NOT_FOUND', { aggregate_type: type, aggregate_id: id });
    return { space: live.meta.archived ? 'archive' : 'main', live };
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
      const { space, live } = await this.#spaceOf(type, id);
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

  /**
   * For the writer's idempotency lookups, which need no retry: moves are writer jobs, so none is
   * under way while the writer reads (and waiting for one there would wait for the writer itself).
   */
  async #eventAt(type: string, id: string, version: number): Promise<EventRecord> {
    const { space, live } = await this.#spaceOf(type, id);
    return this.#eventIn(space, live, type, id, version);
  }

  async #eventIn(space: Space, live: LiveMeta, type: string, id: string, version: number) {
    const v = await this.engine.get(space, K.eventKey(type, id, version));
    if (!v) {
      throw err('EDBX_ERR_EVENT_NOT_FOUND', {
        aggregate_type: type,
        aggregate_id: id,
        version,
        current: live.meta.version,
      });
    }
    return openEventAt(this.env.codec, v, type, id, version);
  }

  /** One event by version. */
  async event(type: string, id: string, version: number): Promise<EventRecord> {
    aggregateType(type);
    aggregateId(id);
    const v = checkVersion(version);
    return this.readAggregate(type, id, (space, live) => this.#eventIn(space, live, type, id, v));
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
  async *scanEvents(
    space: Space,
    type: string,
    id: string,
    opts: ReadEventsOptions = {},
  ): AsyncGenerator<EventRecord[]> {
    const reverse = opts.reverse ?? false;
    const bounded = opts.toVersion !== undefined;
    const first = Math.max(1, opts.fromVersion ?? 1);
    const last = opts.toVersion ?? Number.MAX_SAFE_INTEGER;
    // Versions are contiguous (a gap is refused), so skipping N events is starting N versions further:
    // the skipped events are not read at all (`replay --skip 299990` reads ten events, not 300,000).
    // Only a newest-first read without an upper bound does not know where that is.
    const seek = !reverse || bounded;
    const skipped = Math.min(opts.skip ?? 0, Math.max(0, last - first + 1));
    const from = seek && !reverse ? first + skipped : first;
    const to = seek && reverse ? last - skipped : last;
    if (to < from) return;
    const skip = seek ? 0 : (opts.skip ?? 0);
    const take = opts.take;
    let chunk: EventRecord[] = [];
    let served = 0;
    let seen = 0;
    // The version the next record must have (unknown for the first of a reverse read without a bound).
    let next: number | undefined = reverse ? (bounded ? to : undefined) : from;
    const missing = (version: number) =>
      err('EDBX_ERR_INTEGRITY', {
        where: `event ${type}/${id}@${version}`,
        reason: 'the event is missing from the stored history; run `eventdbx aggregate verify`',
      });
    for await (const [k, v] of this.engine.range(space, {
      gte: K.eventKey(type, id, from),
      lte: K.eventKey(type, id, to),
      reverse,
      ...(take === undefined ? {} : { limit: skip + take }),
      signal: opts.signal,
    })) {
      const version = K.keyVersion(k);
      if (next !== undefined && version !== next) throw missing(next);
      next = reverse ? version - 1 : version + 1;
      if (seen++ < skip) continue;
      chunk.push(openEventAt(this.env.codec, v, type, id, version));
      if (chunk.length >= EVENT_CHUNK) {
        served += chunk.length;
        yield chunk;
        chunk = [];
      }
    }
    served += chunk.length;
    if (bounded) {
      const expected = Math.max(0, Math.min(take ?? Number.MAX_SAFE_INTEGER, to - from + 1 - skip));
      if (served < expected) throw missing(next ?? (reverse ? to : from));
    }
    if (chunk.length > 0) yield chunk;
  }

  /** State of an aggregate now, or at `version` (rebuilt from the nearest snapshot at or below it). */
  async aggregate(
    type: string,
    id: string,
    opts: { version?: number; includeEvents?: boolean; signal?: AbortSignal | undefined } = {},
  ): Promise<AggregateView> {
    aggregateType(type);
    aggregateId(id);
    return this.readAggregate(type, id, (space, live) => this.#aggregateIn(space, live, type, id, opts));
  }

  async #aggregateIn(
    space: Space,
    live: LiveMeta,
    type: string,
    id: string,
    opts: { version?: number; includeEvents?: boolean; signal?: AbortSignal | undefined },
  ): Promise<AggregateView> {
    const current = live.meta;
    const at = opts.version === undefined ? current.version : checkVersion(opts.version);
    if (at > current.version) {
      // A well-formed version the aggregate has not reached: not found (404), like GET …/events/{version}.
      throw err('EDBX_ERR_EVENT_NOT_FOUND', {
        aggregate_type: type,
        aggregate_id: id,
        version: at,
        current: current.version,
      });
    }
    let state: Payload;
    let merkleRoot = current.merkle_root;
    let updatedAt = current.updated_at;
    if (at === current.version && !current.archived) {
      state = current.state;
    } else {
      const snap = await this.#nearestSnapshot(space, type, id, at);
      // Folded while the events are read, a chunk at a time: a long history since the snapshot is
      // never held whole (concurrent reads of old versions would each hold theirs).
      state = snap?.state ?? {};
      let last: EventRecord | undefined;
      // From the event at the snapshot's version: the snapshot must carry that event's root.
      for await (const chunk of this.scanEvents(space, type, id, {
        fromVersion: snap?.version ?? 1,
        toVersion: at,
        signal: opts.signal,
      })) {
        for (const e of chunk) {
          if (last === undefined && snap) {
            if (e.merkle_root !== snap.merkle_root) {
              throw err('EDBX_ERR_INTEGRITY', {
                where: `snapshot of ${type}/${id}@${snap.version}`,
                reason: 'its merkle_root is not that of the event at its version',
              });
            }
          } else state = foldState(state, e.payload);
          last = e;
        }
        // A long fold lets timers and other requests run (the scan's chunks resolve as microtasks).
        await new Promise((r) => setImmediate(r));
      }
      merkleRoot = last!.merkle_root;
      // The time of the event at `at` (not when a snapshot of it was taken).
      updatedAt = last!.metadata.created_at;
    }
    const view: AggregateView = {
      aggregate_type: type,
      aggregate_id: id,
      version: at,
      state,
      merkle_root: merkleRoot,
      archived: current.archived,
      created_at: current.created_at,
      updated_at: updatedAt,
    };
    if (!opts.includeEvents) return view;
    const events = await this.readEvents(space, type, id, { toVersion: at, signal: opts.signal });
    return { ...view, events };
  }

  async #nearestSnapshot(
    space: Space,
    type: string,
    id: string,
    atOrBelow: number,
  ): Promise<SnapshotRecord | undefined> {
    for await (const [k, v] of this.engine.range(space, {
      gte: K.snapshotKey(type, id, 1),
      lte: K.snapshotKey(type, id, atOrBelow),
      reverse: true,
      limit: 1,
    })) {
      return openSnapshotAt(this.env.codec, v, type, id, K.keyVersion(k));
    }
    return undefined;
  }

  /** Snapshots of an aggregate, oldest first. */
  async snapshots(type: string, id: string): Promise<SnapshotRecord[]> {
    aggregateType(type);
    aggregateId(id);
    const prefix = K.snapshotPrefix(type, id);
    return this.readAggregate(type, id, async (space, live) => {
      const out: SnapshotRecord[] = [];
      for await (const [k, v] of this.engine.range(space, { gte: prefix, lt: prefixEnd(prefix) })) {
        out.push(openSnapshotAt(this.env.codec, v, type, id, K.keyVersion(k)));
      }
      // The meta records the last one taken: a list that does not end with it was read in the wrong
      // keyspace (a move raced the read) or lost snapshots, and is not served as the aggregate's.
      if (live.meta.last_snapshot_version > 0 && out.at(-1)?.version !== live.meta.last_snapshot_version)
        throw err('EDBX_ERR_INTEGRITY', {
          where: `snapshot of ${type}/${id}@${live.meta.last_snapshot_version}`,
          reason: 'the snapshot is missing; run `eventdbx aggregate verify`',
        });
      return out;
    });
  }

  /** How many aggregates the store holds (system ones with `includeSystem`), without decoding them. */
  async countAggregates(
    opts: { includeSystem?: boolean; signal?: AbortSignal | undefined } = {},
  ): Promise<number> {
    const prefix = K.metaPrefix();
    let count = 0;
    const range = { gte: prefix, lt: prefixEnd(prefix), signal: opts.signal };
    for await (const keys of this.engine.keyChunks('main', range)) {
      // A type starts right after the tag byte; system types start with '$'.
      for (const k of keys) if (opts.includeSystem || k[1] !== 0x24) count++;
    }
    return count;
  }

  /**
   * Aggregates in key order. `after` is an exclusive cursor (`type/id` of the last item seen).
   * System aggregates (types starting with '$') are listed only with `includeSystem`. With `scopes`
   * (a token's `type` and `type/id` patterns) only the aggregates they cover are listed, and only
   * their key ranges are read: a token scoped to one aggregate costs one lookup, not a scan.
   */
  async list(
    opts: {
      skip?: number;
      take?: number;
      after?: string;
      type?: string;
      includeSystem?: boolean;
      scopes?: readonly string[];
      signal?: AbortSignal | undefined;
    } = {},
  ): Promise<AggregateSummary[]> {
    const spans = listSpans(opts);
    let gt: Buffer | undefined;
    if (opts.after !== undefined) {
      const slash = opts.after.indexOf('/');
      if (slash < 1)
        throw err('EDBX_ERR_INVALID_ARGUMENT', {
          name: 'cursor',
          value: opts.after,
          reason: 'expected type/id',
        });
      gt = K.metaKey(opts.after.slice(0, slash), opts.after.slice(slash + 1));
    }
    const take = opts.take ?? Number.MAX_SAFE_INTEGER;
    const out: AggregateSummary[] = [];
    if (take <= 0) return out; // like events(): take 0 is an empty page, not one aggregate
    // A cursor before a span (taken from another listing) must not widen it.
    const from = (span: KeySpan) => (gt && Buffer.compare(gt, span.gte) >= 0 ? { gt } : { gte: span.gte });
    // A long listing lets timers and other requests run (the scan's chunks resolve as microtasks).
    let scanned = 0;
    const breathe = async (n: number) => {
      const before = scanned;
      scanned += n;
      if (Math.floor(scanned / 1024) > Math.floor(before / 1024)) await new Promise((r) => setImmediate(r));
    };
    let skip = opts.skip ?? 0;
    // Skipped aggregates are counted by key: their metas are neither read out nor opened.
    for (const span of spans) {
      if (skip === 0) break;
      if (gt && Buffer.compare(gt, span.lt) >= 0) continue;
      for await (const keys of this.engine.keyChunks('main', {
        ...from(span),
        lt: span.lt,
        limit: skip,
        signal: opts.signal,
      })) {
        await breathe(keys.length);
        skip -= keys.length;
        gt = keys.at(-1);
      }
    }
    if (skip > 0) return out;
    for (const span of spans) {
      if (gt && Buffer.compare(gt, span.lt) >= 0) continue;
      const limit = take - out.length;
      for await (const [k, v] of this.engine.range('main', {
        ...from(span),
        lt: span.lt,
        limit,
        signal: opts.signal,
      })) {
        await breathe(1);
        const { type, id } = K.decodeMetaKey(k);
        const m = openMetaAt(this.env.codec, v, type, id);
        out.push({
          aggregate_type: m.aggregate_type,
          aggregate_id: m.aggregate_id,
          version: m.version,
          merkle_root: m.merkle_root,
          archived: m.archived,
          updated_at: m.updated_at,
        });
      }
      if (out.length >= take) break;
    }
    await this.#checkListed(out);
    return out;
  }

  /**
   * A listing serves metas as read from disk: each is checked against its events as #loadChecked does
   * (no event may follow its version), in one batched read per keyspace for those not already checked,
   * so a meta rolled back behind the store is refused here too instead of listed with an old version.
   */
  async #checkListed(items: readonly AggregateSummary[]): Promise<void> {
    const todo = items.filter((a) => {
      const known = this.#cache.get(aggKey(a.aggregate_type, a.aggregate_id));
      return !(known && this.#checked.has(known) && known.meta.version === a.version);
    });
    for (const space of ['main', 'archive'] as const) {
      const here = todo.filter((a) => (a.archived ? 'archive' : 'main') === space);
      if (here.length === 0) continue;
      const found = await this.engine.getMany(
        space,
        here.map((a) => K.eventKey(a.aggregate_type, a.aggregate_id, a.version + 1)),
      );
      // A commit may have landed since the page was read: meta() re-reads, and refuses a rollback.
      for (const [j, a] of here.entries())
        if (found[j] !== undefined) await this.meta(a.aggregate_type, a.aggregate_id);
    }
  }

  /** Committed events in position order starting at `from` (1-based), across aggregates. */
  async readLog(from: number, limit: number): Promise<EventRecord[]> {
    // The metas name the keyspace of each event: an archive or restore may move some meanwhile.
    return this.#moves.despite(() => this.#readLog(from, limit));
  }

  async #readLog(from: number, limit: number): Promise<EventRecord[]> {
    const refs: K.EventRef[] = [];
    const first = Math.max(1, from);
    for await (const [k, v] of this.engine.range('main', {
      gte: K.positionKey(first),
      lt: prefixEnd(K.positionPrefix()),
      limit,
    })) {
      const position = K.readU64(k, 1);
      const entry = K.decodeLedgerEntry(position, v);
      if (!entry) {
        throw err('EDBX_ERR_INTEGRITY', { where: `ledger position ${position}`, reason: 'malformed entry' });
      }
      refs.push(entry.ref);
    }
    if (refs.length === 0) return [];
    // One batched read per keyspace: archived aggregates keep their events in the archive keyspace.
    const distinct = [...new Map(refs.map((r) => [aggKey(r.type, r.id), [r.type, r.id] as const])).values()];
    const metas = await this.#loadLive(distinct);
    const archived = new Set(
      distinct.filter((_, i) => metas[i]?.meta.archived).map(([t, i]) => aggKey(t, i)),
    );
    const spaceOf = (r: K.EventRef): Space => (archived.has(aggKey(r.type, r.id)) ? 'archive' : 'main');
    const out: Array<EventRecord | undefined> = new Array(refs.length);
    for (const space of ['main', 'archive'] as const) {
      const idx = refs.flatMap((r, i) => (spaceOf(r) === space ? [i] : []));
      if (idx.length === 0) continue;
      const values = await this.engine.getMany(
        space,
        idx.map((i) => K.eventKey(refs[i]!.type, refs[i]!.id, refs[i]!.version)),
      );
      idx.forEach((i, j) => {
        const r = refs[i]!;
        const v = values[j];
        if (!v)
          throw err('EDBX_ERR_INTEGRITY', {
            where: `ledger position ${from + i}`,
            reason: `event ${r.type}/${r.id}@${r.version} is missing`,
          });
        out[i] = openEventAt(this.env.codec, v, r.type, r.id, r.version);
      });
    }
    return out as EventRecord[];
  }

  /** The audit log (archive, restore, and later security events), oldest first. */
  async auditLog(
    opts: { skip?: number; take?: number; signal?: AbortSignal | undefined } = {},
  ): Promise<EventRecord[]> {
    const live = await this.meta(AUDIT_TYPE, AUDIT_ID);
    if (!live) return [];
    return this.readEvents('main', AUDIT_TYPE, AUDIT_ID, { ...opts, toVersion: live.meta.version });
  }

  /** Drop cached state (tests that edit the engine directly use this). */
  clearCache(): void {
    this.#cache.clear();
  }

  /** States in the LRU and their estimated bytes (stateMemoryBytes): what the memory bounds bound. */
  get cached(): { readonly states: number; readonly bytes: number } {
    return { states: this.#cache.size, bytes: this.#cache.calculatedSize };
  }
}

/**
 * The key layout version (src/store/keys.ts), stored under `G layout` as its decimal digits. A store
 * without events is stamped with the current one; a store with events but another (or no) stamp was
 * written by another build whose Merkle node and ledger entries this build would misread: refuse it
 * clearly instead. Shown by `status`, `/health` and `backup.json`; README "Upgrading".
 */
export const STORAGE_LAYOUT = 2;

/** A meta as held in memory: with its Merkle frontier decoded. */
const liveOf = (meta: AggregateMeta): LiveMeta => ({
  meta,
  frontier: decodeFrontier(Buffer.from(meta.frontier, 'base64')),
});

async function checkLayout(engine: StorageEngine, events: number): Promise<void> {
  const stamp = await engine.get('main', K.globalKey('layout'));
  const text = stamp?.toString('utf8');
  if (text === String(STORAGE_LAYOUT)) return;
  if (events === 0 && !stamp) {
    const value = Buffer.from(String(STORAGE_LAYOUT));
    await engine.write([{ type: 'put', space: 'main', key: K.globalKey('layout'), value }], { sync: true });
    return;
  }
  await engine.close();
  // A marker missing or not a number is told apart from another layout: no build reads it as it is.
  const found = text === undefined ? 'missing' : /^[1-9][0-9]{0,8}$/.test(text) ? Number(text) : 'garbled';
  throw err('EDBX_ERR_STORE_LAYOUT', { found, expected: STORAGE_LAYOUT, version: VERSION, raw: text });
}

/** A range of meta keys: `gte` inclusive, `lt` exclusive. */
interface KeySpan {
  readonly gte: Buffer;
  readonly lt: Buffer;
}

/**
 * The meta key ranges a listing reads, in key order, disjoint. System types all start with '$',
 * which sorts below every character a type name may use, so hiding them is leaving out one range.
 */
function listSpans(opts: { type?: string; includeSystem?: boolean; scopes?: readonly string[] }): KeySpan[] {
  const typeSpan = (type: string): KeySpan => {
    const prefix = Buffer.concat([K.metaPrefix(), Buffer.from(type), Buffer.from([0])]);
    return { gte: prefix, lt: prefixEnd(prefix) };
  };
  const type = opts.type === undefined ? undefined : aggregateType(opts.type);
  if (opts.scopes === undefined) {
    if (type !== undefined) return [typeSpan(type)];
    const meta = K.metaPrefix();
    if (opts.includeSystem) return [{ gte: meta, lt: prefixEnd(meta) }];
    const system = Buffer.concat([meta, Buffer.from('$')]);
    return [
      { gte: meta, lt: system },
      { gte: prefixEnd(system), lt: prefixEnd(meta) },
    ];
  }
  const spans: KeySpan[] = [];
  for (const scope of opts.scopes) {
    const slash = scope.indexOf('/');
    const scopeType = slash < 0 ? scope : scope.slice(0, slash);
    if (type !== undefined && scopeType !== type) continue;
    if (scopeType.startsWith('$') && !opts.includeSystem) continue;
    if (slash < 0) spans.push(typeSpan(scope));
    else {
      const key = K.metaKey(scopeType, scope.slice(slash + 1));
      // The successor of a key in byte order is the key followed by 0x00.
      spans.push({ gte: key, lt: Buffer.concat([key, Buffer.from([0])]) });
    }
  }
  // Overlapping scopes (`patient` and `patient/p-1`) list each aggregate once.
  spans.sort((a, b) => Buffer.compare(a.gte, b.gte));
  const merged: KeySpan[] = [];
  for (const span of spans) {
    const last = merged.at(-1);
    if (last && Buffer.compare(span.gte, last.lt) <= 0) {
      if (Buffer.compare(span.lt, last.lt) > 0) merged[merged.length - 1] = { gte: last.gte, lt: span.lt };
    } else merged.push(span);
  }
  return merged;
}

function prefetchOf(reqs: readonly AppendRequest[]): Prefetch {
  const aggregates: Array<readonly [string, string]> = [];
  const eventIds: string[] = [];
  const seen = new Set<string>();
  for (const r of reqs) {
    aggregates.push([aggregateType(r.aggregate_type), aggregateId(r.aggregate_id)]);
    if (r.event_id !== undefined) {
      const id = checkEventId(r.event_id);
      if (seen.has(id)) throw err('EDBX_ERR_DUPLICATE_EVENT_ID', { event_id: id });
      seen.add(id);
      eventIds.push(id);
    }
  }
  return { aggregates, eventIds };
}

/** Why the stored ledger head cannot be appended to, or undefined when its entries back it. */
async function ledgerHeadProblem(store: EventStore): Promise<EventDbxError | undefined> {
  try {
    await checkedLedgerHead(store);
  } catch (e) {
    if (isEventDbxError(e, 'EDBX_ERR_INTEGRITY')) return e;
    throw e;
  }
  const size = store.ledgerHead().size;
  if (await store.engine.get('main', K.positionKey(size + 1)))
    return err('EDBX_ERR_INTEGRITY', {
      where: 'the ledger head',
      reason: `it records ${size} events but entry ${size + 1} is stored (rolled back?); run \`aggregate verify\``,
    });
  return undefined;
}
