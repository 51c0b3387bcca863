/**
 * Verification worker threads (verify-thread.ts), attached to the store's open database. Started on
 * first use, at most `size` of them, each verifying one task (a segment, or a group of whole
 * aggregates) at a time; idle
 * workers do not keep the process alive. `close()` tells busy workers to stop between chunks, waits for
 * their answers (their scans are closed by then), then terminates every worker: the store closes the
 * database only after that. A store holds its pool in VerifyWorkers, which starts it as its options ask.
 */
import type { Worker } from 'node:worker_threads';
import { err, throwIfAborted } from '../core/errors.js';
import type { StorageEngine } from '../storage/engine.js';
import { moduleWorker } from '../storage/module-worker.js';
import type { RecordCodec, SharedCodec } from './codec.js';
import { DEFAULT_SEGMENT_EVENTS, type VerificationOptions, defaultVerifyThreads } from './options.js';
import type { Segment } from './verify-segment.js';
import type { VerifyReport } from './types.js';
import {
  type Outcome,
  type TaskAnswer,
  type TaskMessage,
  fromWireFailure,
  fromWireOutcome,
} from './verify-wire.js';

const outOfTurn = () => err('EDBX_ERR_INTERNAL', { reason: 'verification worker answered out of turn' });

/** Idle workers are stopped after this long. */
const IDLE_MS = 30_000;

interface Pending<T> {
  readonly resolve: (value: T) => void;
  readonly reject: (e: unknown) => void;
}

export class VerifyPool {
  readonly #handle: bigint;
  readonly #size: number;
  readonly #idle: Worker[] = [];
  readonly #answer = new Map<Worker, Pending<TaskAnswer>>();
  readonly #waiting: Array<Pending<Worker>> = [];
  readonly #inflight = new Set<Promise<unknown>>();
  /** Set to 1 on close: workers poll it between chunks (their reads are synchronous, so a message
   * would wait until the task ends). */
  readonly #stop = new Int32Array(new SharedArrayBuffer(4));
  readonly #idleTimers = new Map<Worker, NodeJS.Timeout>();
  readonly #idleMs: number;
  /** Workers started and not yet lost (failed, exited or stopped). */
  readonly #alive = new WeakSet<Worker>();
  #workers = 0;
  #task = 0;
  #closed = false;

  /** `idleMs`: how long a worker may stay idle before it is stopped (started again when needed). */
  constructor(handle: bigint, size: number, idleMs = IDLE_MS) {
    this.#handle = handle;
    this.#size = Math.max(1, size);
    this.#idleMs = idleMs;
  }

  /** Worker threads running now (busy or idle). */
  get threads(): number {
    return this.#workers;
  }

  /** Whether close() was called: no task is taken any more, and the workers are (being) stopped. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Tasks handed to the workers so far. */
  get tasks(): number {
    return this.#task;
  }

  /** How many worker threads may verify at once. */
  get size(): number {
    return this.#size;
  }

  /** Verify one segment on a worker; `signal` stops it between chunks. */
  async run(segment: Segment, codec: SharedCodec, signal?: AbortSignal): Promise<Outcome> {
    const message = { kind: 'segment', task: ++this.#task, codec, segment } as const;
    const answer = await this.#track(message, signal);
    throwIfAborted(signal);
    if ('outcome' in answer) return fromWireOutcome(answer.outcome);
    throw 'failure' in answer ? fromWireFailure(answer.failure) : outOfTurn();
  }

  /** Verify whole aggregates (metas read by the worker) on one worker; one report each, in order. */
  async verifyAggregates(
    aggregates: ReadonlyArray<readonly [string, string]>,
    codec: SharedCodec,
    signal?: AbortSignal,
  ): Promise<VerifyReport[]> {
    const message = { kind: 'aggregates', task: ++this.#task, codec, aggregates } as const;
    const answer = await this.#track(message, signal);
    throwIfAborted(signal);
    if ('reports' in answer) return answer.reports;
    throw 'failure' in answer ? fromWireFailure(answer.failure) : outOfTurn();
  }

  /**
   * Send a task; close() waits for every tracked task to settle. An abort of `signal` reaches the busy
   * worker through shared memory (it polls between chunks; a message would wait for the task's end).
   */
  #track(message: TaskMessage, signal?: AbortSignal): Promise<TaskAnswer> {
    throwIfAborted(signal);
    let running: Promise<TaskAnswer>;
    if (signal) {
      const cancel = new Int32Array(new SharedArrayBuffer(4));
      const abort = () => Atomics.store(cancel, 0, 1);
      signal.addEventListener('abort', abort, { once: true });
      running = this.#send({ ...message, cancel });
      void running.then(
        () => signal.removeEventListener('abort', abort),
        () => signal.removeEventListener('abort', abort),
      );
    } else running = this.#send(message);
    const settled = running.catch(() => undefined);
    this.#inflight.add(settled);
    void settled.then(() => this.#inflight.delete(settled));
    return running;
  }

  async #send(message: TaskMessage): Promise<TaskAnswer> {
    const worker = await this.#acquire();
    try {
      return await new Promise<TaskAnswer>((resolve, reject) => {
        this.#answer.set(worker, { resolve, reject });
        worker.ref();
        worker.postMessage(message);
      });
    } finally {
      this.#answer.delete(worker);
      this.#release(worker);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of this.#waiting.splice(0)) w.reject(err('EDBX_ERR_STORE_NOT_OPEN'));
    Atomics.store(this.#stop, 0, 1);
    // Every worker is idle once the tasks in flight are answered: their scans are closed.
    await Promise.all(this.#inflight);
    for (const t of this.#idleTimers.values()) clearTimeout(t);
    this.#idleTimers.clear();
    await Promise.all(this.#idle.splice(0).map((w) => w.terminate()));
  }

  async #acquire(): Promise<Worker> {
    if (this.#closed) throw err('EDBX_ERR_STORE_NOT_OPEN');
    const idle = this.#idle.pop();
    if (idle) {
      clearTimeout(this.#idleTimers.get(idle));
      this.#idleTimers.delete(idle);
      return idle;
    }
    if (this.#workers < this.#size) return this.#start();
    return new Promise<Worker>((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  #release(worker: Worker): void {
    if (!this.#alive.has(worker)) return;
    const next = this.#waiting.shift();
    if (next) return next.resolve(worker);
    worker.unref();
    this.#idle.push(worker);
    // A worker left idle a while is stopped: its memory goes back until the next verification.
    const timer = setTimeout(() => {
      this.#idleTimers.delete(worker);
      const i = this.#idle.indexOf(worker);
      if (i < 0) return;
      this.#idle.splice(i, 1);
      void worker.terminate();
    }, this.#idleMs);
    timer.unref();
    this.#idleTimers.set(worker, timer);
  }

  #start(): Worker {
    let worker: Worker;
    try {
      worker = moduleWorker(import.meta.url, 'verify-thread', {
        workerData: { handle: this.#handle, stop: this.#stop },
      });
    } catch (e) {
      throw err('EDBX_ERR_INTERNAL', {
        reason: `could not start a verification worker: ${(e as Error).message}`,
      });
    }
    this.#workers++;
    this.#alive.add(worker);
    worker.on('message', (m: TaskAnswer) => this.#answer.get(worker)?.resolve(m));
    const lost = (reason: string) => {
      if (!this.#alive.delete(worker)) return;
      this.#workers--;
      clearTimeout(this.#idleTimers.get(worker));
      this.#idleTimers.delete(worker);
      const i = this.#idle.indexOf(worker);
      if (i >= 0) this.#idle.splice(i, 1);
      this.#answer.get(worker)?.reject(err('EDBX_ERR_INTERNAL', { reason: `verification worker ${reason}` }));
    };
    worker.on('error', (e) => lost(`failed: ${e.message}`));
    worker.on('exit', (code) => lost(`exited (${code})`));
    return worker;
  }
}

/** A store's verification workers, as its options ask (options.ts): the pool is started on first use. */
export class VerifyWorkers {
  readonly #threads: number;
  readonly #segmentEvents: number;
  #pool: VerifyPool | undefined;

  constructor(options: VerificationOptions | undefined) {
    this.#threads = options?.threads ?? defaultVerifyThreads();
    this.#segmentEvents = Math.max(1, options?.segmentEvents ?? DEFAULT_SEGMENT_EVENTS);
  }

  /** EventStore.verifyWorkers, for a store of `engine` whose codec is `codec`. */
  of(
    engine: StorageEngine,
    codec: RecordCodec,
  ): { pool: VerifyPool; codec: SharedCodec; segmentEvents: number } | undefined {
    const shared = codec.share?.();
    if (this.#threads < 1 || shared === undefined || engine.status !== 'open') return undefined;
    if (this.#pool === undefined) {
      const handle = engine.shareHandle(() => this.#pool?.close() ?? Promise.resolve());
      if (handle === undefined) return undefined;
      this.#pool = new VerifyPool(handle, this.#threads);
    }
    return { pool: this.#pool, codec: shared, segmentEvents: this.#segmentEvents };
  }
}
