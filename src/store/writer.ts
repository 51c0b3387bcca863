/**
 * The single writer with group commit. Jobs queue up while a batch is being made durable; the next
 * batch takes every queued job, runs each against one transaction overlay (a failing job is rolled back
 * to its savepoint and rejected alone), and writes all their operations in one fsync'd engine batch.
 * So concurrent appenders share fsyncs, and every acknowledged append is on disk.
 *
 * Two batches overlap: while one is being written (the RocksDB engine writes on its own thread), the
 * next is prepared on top of its uncommitted changes, and written only once it has committed. If
 * that write fails, the prepared batch is refused with it; nothing is acknowledged before its fsync.
 */
import { type EventDbxError, err, toEventDbxError } from '../core/errors.js';
import type { EventRecord } from '../core/event.js';
import type { TokenRecord } from '../core/tokens.js';
import { type Frontier, encodeFrontier } from '../core/merkle/index.js';
import type { StorageEngine } from '../storage/engine.js';
import { sealJson } from './codec.js';
import * as K from './keys.js';
import { encodeLedgerHead } from './ledger-head.js';
import { type LiveMeta, type TxEnv, WriteTx, aggKey } from './tx.js';
import type { AggregateMeta } from './types.js';

export interface Prefetch {
  /** Aggregates (type, id) the job will touch. */
  readonly aggregates: ReadonlyArray<readonly [string, string]>;
  /** Client event ids the job will check for idempotency. */
  readonly eventIds: readonly string[];
}

interface Job<T = unknown> {
  readonly prefetch: Prefetch;
  /** Exclusive jobs run alone in their batch and may read the engine while running. */
  readonly exclusive: boolean;
  readonly run: (tx: WriteTx) => T | Promise<T>;
  readonly resolve: (value: T) => void;
  readonly reject: (e: unknown) => void;
}

export interface WriterHooks {
  /** Load committed metas (cache first, then engine). */
  loadMetas(keys: ReadonlyArray<readonly [string, string]>): Promise<(LiveMeta | null | Error)[]>;
  /** Look up an existing event by event id. */
  loadByEventId(ids: readonly string[]): Promise<(EventRecord | null)[]>;
  /** Called after a batch is durable, with the metas it changed and the events it appended in order. */
  committed(metas: LiveMeta[], records: EventRecord[], tokens: ReadonlyMap<string, TokenRecord>): void;
  /** Called once, when a failure first makes the writer refuse every further write. */
  failed?(error: EventDbxError): void;
  /**
   * Called once per durable batch, after its write (and fsync) succeeded, with how long the engine
   * took: once a batch, never once an event, so timing costs nothing that grows with the load.
   */
  written?(seconds: number): void;
}

export interface WriterStats {
  batches: number;
  events: number;
  jobs: number;
}

const MAX_JOBS_PER_BATCH = 4096;

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

interface Prepared {
  readonly jobs: Job[];
  readonly tx: WriteTx;
  readonly outcomes: Outcome[];
  readonly changed: LiveMeta[];
}

/** The audit log's key among a transaction's metas (its type and id as store.ts names them). */
const AUDIT_KEY = aggKey('$audit', 'log');

export class Writer {
  readonly stats: WriterStats = { batches: 0, events: 0, jobs: 0 };
  #queue: Job[] = [];
  #running = false;
  #failed: EventDbxError | undefined;
  /** Whether #failed is a write that failed (not what the store found on opening, see refuse). */
  #writeFailed = false;
  #idle: Array<() => void> = [];
  /** The prepared batch whose write is in flight, if any. */
  #pending: WriteTx | undefined;

  constructor(
    private readonly engine: StorageEngine,
    private readonly env: TxEnv,
    private readonly hooks: WriterHooks,
    private position: number,
    private ledger: Frontier,
    /** The audit log's length as of the committed ledger head (ledger-head.ts). */
    private auditVersion: number,
  ) {}
  /** The audit log's length each prepared (not yet committed) transaction leaves. */
  readonly #auditOf = new WeakMap<WriteTx, number>();

  get committedPosition(): number {
    return this.position;
  }

  get committedLedger(): Frontier {
    return this.ledger;
  }

  /** The audit log's version (its length) as of the last commit. */
  get committedAuditVersion(): number {
    return this.auditVersion;
  }

  /** The audit log's version once the batches prepared so far have committed. */
  get preparedAuditVersion(): number {
    const pending = this.#pending;
    return (pending && this.#auditOf.get(pending)) ?? this.auditVersion;
  }

  /** Why every write is refused since a write failed (undefined while writes go through). */
  get failure(): EventDbxError | undefined {
    return this.#failed;
  }

  /** Refuse every write from now on with `error` (what the store found on disk cannot be built on). */
  refuse(error: EventDbxError): void {
    this.#fail(error);
  }

  /**
   * What a write is refused with once `failed` made the store refuse every write: after a failed
   * write, one message (which names `eventdbx restart`) whatever the engine said.
   */
  #refusal(failed: EventDbxError): EventDbxError {
    return this.#writeFailed || failed.code === 'EDBX_ERR_STORE_IO'
      ? err('EDBX_ERR_STORE_IO', { reason: reasonOf(failed), refused: true })
      : failed;
  }

  #fail(error: EventDbxError): void {
    if (this.#failed) return;
    this.#failed = error;
    try {
      this.hooks.failed?.(error);
    } catch {
      // Reporting must not keep the batch's callers from their answer.
    }
  }

  submit<T>(prefetch: Prefetch, run: (tx: WriteTx) => T | Promise<T>, exclusive = false): Promise<T> {
    if (this.#failed) {
      return Promise.reject(this.#refusal(this.#failed));
    }
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ prefetch, exclusive, run, resolve, reject } as Job<unknown> as Job);
      if (!this.#running) void this.#drain();
    });
  }

  /** Resolves when every queued job has finished. */
  idle(): Promise<void> {
    if (!this.#running && this.#queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  async #drain(): Promise<void> {
    this.#running = true;
    // The batch whose write is in flight (write, then commit). The next batch is prepared meanwhile,
    // on top of the in-flight batch's changes (#pending), and written once that batch has committed.
    let inflight: Promise<void> | undefined;
    try {
      for (;;) {
        if (this.#queue.length === 0) {
          if (!inflight) break;
          await inflight;
          inflight = undefined;
          await this.#yield();
          continue;
        }
        const batch = this.#take(inflight === undefined);
        if (batch[0]!.exclusive) {
          // Exclusive jobs read the engine while they run: everything before them must be committed.
          await inflight;
          inflight = undefined;
          const prepared = await this.#prepare(batch);
          if (prepared) await this.#commit(prepared);
        } else {
          const prepared = await this.#prepare(batch);
          await inflight;
          inflight = prepared && this.#commit(prepared);
        }
        await this.#yield();
      }
    } finally {
      this.#running = false;
      for (const r of this.#idle.splice(0)) r();
    }
  }

  /** Lets the callers just acknowledged run and queue their next appends, so they share the next fsync. */
  async #yield(): Promise<void> {
    if (this.#queue.length < MAX_JOBS_PER_BATCH) await new Promise((r) => setImmediate(r));
  }

  /**
   * The next batch: one exclusive job, or the queued jobs up to the next exclusive one. With no write
   * in flight, only the first half: the rest is prepared while that half is written, and under steady
   * load the callers settle into two groups that take turns (one being written, one being prepared).
   */
  #take(idle: boolean): Job[] {
    const first = this.#queue[0]!;
    if (first.exclusive) return this.#queue.splice(0, 1);
    const max = idle ? Math.min(MAX_JOBS_PER_BATCH, Math.ceil(this.#queue.length / 2)) : MAX_JOBS_PER_BATCH;
    let n = 1;
    while (n < this.#queue.length && n < max && !this.#queue[n]!.exclusive) n++;
    return this.#queue.splice(0, n);
  }

  /** Runs the jobs against one transaction and collects its operations; writes nothing. */
  async #prepare(jobs: Job[]): Promise<Prepared | undefined> {
    const base = this.#pending;
    const tx = new WriteTx(
      this.env,
      base?.position ?? this.position,
      base?.ledger ?? this.ledger,
      base?.tokens,
    );
    const outcomes: Outcome[] = [];
    try {
      const p = jobs.map((j) => j.prefetch);
      await this.#prefetch(
        tx,
        p.flatMap((x) => x.aggregates),
        p.flatMap((x) => x.eventIds),
      );
      if (jobs[0]?.exclusive)
        tx.fetch = (aggregates, eventIds = []) => this.#prefetch(tx, aggregates, eventIds);
    } catch (e) {
      for (const j of jobs) j.reject(toEventDbxError(e));
      return undefined;
    }
    for (const job of jobs) {
      const rollback = tx.savepoint();
      try {
        const value = job.exclusive ? await job.run(tx) : job.run(tx);
        if (value instanceof Promise)
          throw err('EDBX_ERR_INTERNAL', { reason: 'non-exclusive job returned a promise' });
        outcomes.push({ ok: true, value });
      } catch (e) {
        rollback();
        outcomes.push({ ok: false, error: e });
      }
    }

    const changed: LiveMeta[] = [];
    try {
      for (const [k, live] of tx.metas) {
        if (live === null || live === tx.loaded.get(k)) continue;
        changed.push(live);
        const { meta } = live;
        const stored: AggregateMeta = { ...meta, frontier: encodeFrontier(live.frontier).toString('base64') };
        if (meta.archived) {
          // Archived: the full meta (with state) lives in the archive keyspace, a stub stays in main.
          tx.put(
            K.metaKey(meta.aggregate_type, meta.aggregate_id),
            sealJson(this.env.codec, stored),
            'archive',
          );
          tx.put(
            K.metaKey(meta.aggregate_type, meta.aggregate_id),
            sealJson(this.env.codec, { ...stored, state: {} }),
          );
        } else {
          tx.put(K.metaKey(meta.aggregate_type, meta.aggregate_id), sealJson(this.env.codec, stored));
        }
      }
      const audit = tx.metas.get(AUDIT_KEY)?.meta.version ?? (base ? this.#auditOf.get(base) : undefined);
      this.#auditOf.set(tx, audit ?? this.auditVersion);
      if (tx.position !== (base?.position ?? this.position)) {
        tx.put(K.globalKey('ledger'), encodeLedgerHead(this.env.codec, tx.ledger, this.#auditOf.get(tx)!));
      }
    } catch (e) {
      // Nothing is written: every job of the batch is refused, the store goes on.
      for (const j of jobs) j.reject(toEventDbxError(e));
      return undefined;
    }
    const prepared: Prepared = { jobs, tx, outcomes, changed };
    if (tx.ops.length > 0) this.#pending = tx;
    return prepared;
  }

  /** Writes a prepared batch durably, then publishes it and answers its jobs. */
  async #commit({ jobs, tx, outcomes, changed }: Prepared): Promise<void> {
    try {
      if (this.#failed) {
        // Prepared on top of a batch whose write failed: it must not be written either.
        for (const j of jobs) j.reject(this.#refusal(this.#failed));
        return;
      }
      if (tx.ops.length > 0) {
        let seconds = 0;
        try {
          // A lone job with nobody queued behind it gains nothing from a write thread: write inline.
          const inline = jobs.length === 1 && this.#queue.length === 0;
          const started = performance.now();
          await this.engine.write(tx.ops, { sync: true, inline });
          seconds = (performance.now() - started) / 1000;
        } catch (e) {
          // The outcome of a failed fsync is unknown: refuse further writes rather than guess.
          const error = toEventDbxError(e);
          if (!this.#failed) this.#writeFailed = true;
          this.#fail(error);
          for (const j of jobs) j.reject(err('EDBX_ERR_STORE_IO', { reason: reasonOf(error) }, e));
          return;
        }
        this.stats.batches++;
        this.stats.events += tx.records.length;
        try {
          this.hooks.written?.(seconds);
        } catch {
          // Timing is reported, never a reason to fail the batch.
        }
      }
      this.stats.jobs += jobs.length;
      this.position = tx.position;
      this.ledger = tx.ledger;
      this.auditVersion = this.#auditOf.get(tx) ?? this.auditVersion;
      try {
        for (const fn of tx.onCommit) fn();
        this.hooks.committed(changed, tx.records, tx.tokens);
      } catch (e) {
        // The batch is durable, but what is held in memory may now disagree with it: refuse further
        // writes (a reopen rebuilds memory from disk) rather than build on a guess.
        this.#fail(toEventDbxError(e));
      }
      jobs.forEach((job, i) => {
        const o = outcomes[i]!;
        if (o.ok) job.resolve(o.value);
        else job.reject(o.error);
      });
    } finally {
      if (this.#pending === tx) this.#pending = undefined;
    }
  }

  async #prefetch(
    tx: WriteTx,
    aggregates: ReadonlyArray<readonly [string, string]>,
    eventIds: readonly string[],
  ): Promise<void> {
    // What the batch in flight changed is not committed yet, but this batch builds on it.
    const base = this.#pending;
    const aggs = new Map<string, readonly [string, string]>();
    for (const a of aggregates) {
      const k = aggKey(a[0], a[1]);
      if (tx.loaded.has(k)) continue;
      const pending = base?.metas.get(k);
      if (pending !== undefined) tx.loaded.set(k, pending);
      else aggs.set(k, a);
    }
    const aggList = [...aggs.entries()];
    const idList: string[] = [];
    for (const id of new Set(eventIds)) {
      if (tx.idem.has(id)) continue;
      const pending = base?.idem.get(id);
      if (pending) tx.idem.set(id, pending);
      else idList.push(id);
    }
    const [metas, prior] = await Promise.all([
      this.hooks.loadMetas(aggList.map(([, a]) => a)),
      this.hooks.loadByEventId(idList),
    ]);
    aggList.forEach(([k], i) => {
      const m = metas[i] ?? null;
      if (m instanceof Error) tx.refused.set(k, m);
      tx.loaded.set(k, m instanceof Error ? null : m);
    });
    idList.forEach((id, i) => tx.idem.set(id, prior[i] ?? null));
  }
}

/** What went wrong, without a "storage error:" of its own when it already is one. */
const reasonOf = (e: EventDbxError): string =>
  e.code === 'EDBX_ERR_STORE_IO' ? String(e.params.reason) : e.message;
