/**
 * The delivery loop of one plugin: reads the committed log from its cursor in position order, hands
 * batches to the sink, and moves the durable cursor only after the sink acknowledged. Failures are
 * retried with exponential backoff and jitter; after `max_attempts` an event is dead-lettered (the
 * loop moves on) or the loop blocks, retrying at the longest delay. A destination that cannot be reached
 * costs no event an attempt: it is retried, at most `backoff_max_ms` apart, until it is back (an outage
 * is not the event's fault, and its dead letters would wait for a manual `plugin retry`). A batch whose
 * failure names no event is first delivered one event at a time, so only the failing one is given up
 * on. Each plugin has its own loop, so a slow or dead sink holds up nothing else, and the loop never
 * runs on the writer's path: appends only wake it. A sink that hangs neither hides it nor blocks the
 * loop's stop (watchdog.ts): a call without a timeout of its own fails after `timeout_ms`, and a
 * stop lets go of a sink still busy after its grace periods, saying so once at warn.
 */
import type { EventDbxError } from '../core/errors.js';
import type { EventRecord } from '../core/event.js';
import type { EventStore } from '../store/index.js';
import { backoffDelay } from './backoff.js';
import { divergence } from './divergence.js';
import { FailureLog } from './failure-log.js';
import {
  deleteDeadLetter,
  listDeadLetters,
  updateDeadLetter,
  writeCursor,
  writeDeadLetter,
} from './repository.js';
import { StateTracker } from './state.js';
import { CLOSE_GRACE_MS, Watchdog, closeWithin, duration, within } from './watchdog.js';
import {
  type CursorRecord,
  type DeliveryItem,
  type LoopStats,
  type PluginConfig,
  type PluginLogger,
  type RetryOutcome,
  type Sink,
  type StoredDeadLetter,
  DeliveryFailure,
  HOST_TIMED_KINDS,
  reasonOf,
  transientFailure,
} from './types.js';

/** A cursor is written at most this often while events flow (and always when the loop idles or stops). */
const PERSIST_EVERY_MS = 200;
/** While idle, look at the log this often even without a commit notification. */
const IDLE_POLL_MS = 5_000;
/** Dead letters read at a time by `plugin retry`. */
export const RETRY_PAGE = 500;
/** How long stopping a plugin waits for its delivery in flight before giving up on it. */
export const STOP_GRACE_MS = 5_000;

/** The events of a batch, as the log says what was in flight. */
const span = (items: readonly DeliveryItem[]): string => {
  const first = items[0]!.record.position;
  const last = items.at(-1)!.record.position;
  return first === last ? `delivering position ${first}` : `delivering positions ${first}-${last}`;
};

interface Sleeper {
  readonly finish: () => void;
  readonly wakeOnCommit: boolean;
}

export class DeliveryLoop {
  #cursor: number;
  #persisted: CursorRecord;
  /** When the cursor was last written, by the monotonic clock (never yet: the first is written at once). */
  #lastPersist = -Infinity;
  #persistTimer: NodeJS.Timeout | undefined;
  #persisting: Promise<void> = Promise.resolve();
  #attempts = 0;
  /** Failures in a row at the cursor that could not reach the destination (not counted as attempts). */
  #outage = 0;
  /**
   * A failed attempt may have written the events up to this position (see DeliveryFailure.maybeWritten):
   * a batch's, when its events are then isolated, not only the one at the cursor.
   */
  #maybeWrittenUntil = 0;
  /** Deliver one event at a time up to this position (isolating an unknown failing event of a batch). */
  #isolateUntil = 0;
  #stopped = false;
  /** Stop gave up waiting for an in-flight delivery: this loop must not write its cursor any more. */
  #abandoned = false;
  #sleeper: Sleeper | undefined;
  /** Callers of requestRetry, answered when the retry they asked for has run (or could not). */
  #retryWaiters: Array<{ resolve: (o: RetryOutcome) => void; reject: (e: unknown) => void }> = [];
  #retryPending: boolean;
  #done: Promise<void> | undefined;
  readonly #tracker: StateTracker;
  /** The destination was compared with the store since the sink last (re)opened (divergence.ts). */
  #checked = false;
  /** The destination holds events the store does not have: nothing is delivered (see #matches). */
  #diverged: EventDbxError | undefined;
  /** A dead destination fails every event alike: its warnings are logged once a minute, with a count. */
  readonly #failureLog: FailureLog;
  /** The sink's calls: what is in flight, and the limit on those of a sink without timeouts of its own. */
  readonly #calls: Watchdog;
  #stats: Omit<LoopStats, 'cursor' | 'attempts'> = {
    state: 'starting',
    delivered: 0,
    retries: 0,
    dead_lettered: 0,
  };

  constructor(
    private readonly store: EventStore,
    readonly config: PluginConfig,
    private readonly sink: Sink,
    private readonly log: PluginLogger,
    start: CursorRecord,
    /** Reads the committed log (the host's shared cache of its tail). */
    private readonly readLog: (from: number, limit: number) => Promise<EventRecord[]> = (from, limit) =>
      store.readLog(from, limit),
    /** How long identical failures are collapsed into one log line. */
    repeatIntervalMs?: number,
  ) {
    this.#failureLog = new FailureLog(config.name, log, repeatIntervalMs);
    this.#calls = new Watchdog(
      config.name,
      HOST_TIMED_KINDS.includes(config.kind) ? config.delivery.timeout_ms : undefined,
    );
    this.#cursor = Math.max(1, start.position);
    this.#persisted = start;
    this.#retryPending = start.retry_requested === true;
    this.#tracker = new StateTracker(store);
    if (start.last_error) this.#stats = { ...this.#stats, last_error: start.last_error };
  }

  /** The time to record (the store's clock: it never goes back, see store/clock.ts). */
  #now(): Date {
    return this.store.env.now();
  }

  get name(): string {
    return this.config.name;
  }

  stats(): LoopStats {
    return { ...this.#stats, cursor: this.#cursor, attempts: this.#attempts };
  }

  start(): void {
    this.#done = this.#run();
  }

  /** New events were committed. */
  notifyCommit(): void {
    if (this.#sleeper?.wakeOnCommit) this.#sleeper.finish();
  }

  /** Retry the dead letters (and a blocked event) now. */
  requestRetry(): Promise<RetryOutcome> {
    return new Promise((resolve, reject) => {
      this.#retryWaiters.push({ resolve, reject });
      this.#sleeper?.finish();
    });
  }

  /**
   * Stop after the in-flight delivery (waiting at most `graceMs`), write the cursor, close the sink
   * (waiting at most CLOSE_GRACE_MS). Never waits longer: a delivery still in flight is given up on
   * (the cursor is not written after it: what it carried is delivered again), a sink that does not
   * close is let go of (`Sink.abandon`), and either is logged once at warn.
   */
  async stop(graceMs = STOP_GRACE_MS): Promise<void> {
    this.#stopped = true;
    this.#sleeper?.finish();
    const late = !(await within(this.#done ?? Promise.resolve(), graceMs));
    // Once given up on, the loop writes no cursor any more (its in-flight batch was not acknowledged).
    if (late) this.#abandoned = true;
    const busy = this.#calls.doing;
    const letGo = await closeWithin(this.sink);
    if (!late && letGo === undefined) return;
    const parts = [
      late
        ? `plugin stopped while ${busy ?? 'a delivery'} was still in flight after ${duration(graceMs)}`
        : `plugin stopped${busy ? ` while ${busy} was still in flight` : ''}`,
      ...(letGo ? [`its destination did not close within ${duration(CLOSE_GRACE_MS)}: ${letGo}`] : []),
      'what it had not acknowledged will be delivered again',
    ];
    this.log.warn({ plugin: this.name, ...(busy ? { doing: busy } : {}) }, parts.join('; '));
  }

  #set(patch: Partial<Omit<LoopStats, 'cursor' | 'attempts'>>): void {
    this.#stats = { ...this.#stats, ...patch };
  }

  #sleep(ms: number | undefined, wakeOnCommit: boolean): Promise<void> {
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        if (this.#sleeper === sleeper) this.#sleeper = undefined;
        resolve();
      };
      const timer = ms === undefined ? undefined : setTimeout(finish, ms);
      const sleeper: Sleeper = { finish, wakeOnCommit };
      this.#sleeper = sleeper;
    });
  }

  async #run(): Promise<void> {
    try {
      while (!this.#stopped) {
        try {
          await this.#step();
        } catch (e) {
          // Not the sink's failure (the store could not be read): report it and try again later.
          this.log.error({ plugin: this.name, err: reasonOf(e) }, 'plugin delivery step failed');
          this.#set({ state: 'retrying' });
          await this.#sleep(this.config.delivery.backoff_max_ms, false);
        }
      }
    } finally {
      await this.#persist().catch(() => undefined);
      clearTimeout(this.#persistTimer);
      this.#failureLog.close();
      // stop() closes the sink; a loop it gave up on closes what a late call may have opened since.
      if (this.#abandoned) await this.sink.close().catch(() => undefined);
      for (const w of this.#retryWaiters.splice(0)) w.resolve({ retried: 0, delivered: 0, failed: 0 });
      this.#set({ state: 'stopped' });
    }
  }

  async #step(): Promise<void> {
    if (this.#diverged) return this.#holdDiverged();
    if (this.#retryWaiters.length > 0 || this.#retryPending) return this.#retryDeadLetters();
    if (this.#cursor > this.store.size) {
      if (this.#persisted.position !== this.#cursor) return this.#persist();
      if (!this.#checked) {
        // Told at start even with nothing to deliver; a destination that cannot be read now is
        // compared before the first delivery.
        if (!(await this.#matches().catch(() => true))) return;
        // A commit while it was read woke no sleeper: deliver it now, not at the next idle poll.
        if (this.#cursor <= this.store.size) return;
      }
      this.#set({ state: 'idle' });
      // Checked and registered in one synchronous step: a commit cannot slip in between.
      if (!this.#stopped) await this.#sleep(IDLE_POLL_MS, true);
      return;
    }
    const limit = this.#cursor <= this.#isolateUntil ? 1 : this.sink.batchSize;
    const records = await this.readLog(this.#cursor, limit);
    if (records.length === 0) {
      await this.#sleep(50, true);
      return;
    }
    const next = records.at(-1)!.position + 1;
    // System aggregates ($audit) are the store's own bookkeeping, never delivered.
    const items = await this.#items(records.filter((r) => !r.aggregate_type.startsWith('$')));
    if (items.length === 0) return this.#advance(next, 0);
    // Past its attempts with --on-failure block, a plugin trying the event again is still blocked on it.
    const { max_attempts, on_failure } = this.config.delivery;
    const blocked = on_failure === 'block' && this.#attempts >= max_attempts;
    this.#set({ state: this.#outage > 0 ? 'unreachable' : blocked ? 'blocked' : 'delivering' });
    try {
      if (!(await this.#matches())) return;
      await this.#calls.run(span(items), () => this.sink.deliver(items));
    } catch (e) {
      // The sink reopens after a failure: its destination is compared again.
      this.#checked = false;
      return this.#failed(items, e);
    }
    this.#failureLog.delivered(items[0]!.record.position);
    return this.#advance(next, items.length);
  }

  /**
   * Whether the destination holds only what the store has (divergence.ts). When it does not, the loop
   * stops delivering (state `failed`, the error as its last error, logged), dead-letters nothing,
   * and waits for someone to act (see #holdDiverged).
   */
  async #matches(): Promise<boolean> {
    if (this.#checked) return true;
    const diverged = await this.#calls.run('reading the destination to compare it with the store', () =>
      divergence(this.store, this.config, this.sink),
    );
    this.#checked = true;
    if (!diverged) return true;
    this.#diverged = diverged;
    this.#set({
      state: 'failed',
      last_error: { code: diverged.code, message: diverged.message, at: this.#now().toISOString() },
    });
    this.#failureLog.error(
      `diverged:${diverged.message}`,
      { plugin: this.name, code: diverged.code },
      diverged.message,
    );
    await this.#persist();
    return false;
  }

  /**
   * A diverged destination does not mend itself, so it is not read again on a timer (a query or a
   * file read every backoff_max_ms, for ever, for nothing): only when someone acts. `plugin retry`
   * compares it again here, as it may have been put right by hand, and is refused with the error
   * while it still differs; a replay, a configuration change, enabling the plugin and a restart
   * start a new loop, which compares it before delivering. Meanwhile the destination is let go (no
   * open file, connection or SQLite thread), and what the sink knew of it is forgotten: a retry
   * reads it afresh.
   */
  async #holdDiverged(): Promise<void> {
    const letGo = await closeWithin(this.sink);
    if (letGo)
      this.log.warn(
        { plugin: this.name },
        `plugin destination did not close within ${duration(CLOSE_GRACE_MS)}: ${letGo}`,
      );
    if (this.#retryWaiters.length === 0 && !this.#stopped) await this.#sleep(undefined, false);
    if (this.#stopped || this.#retryWaiters.length === 0) return;
    // The state stays `failed` while it is compared (#retryDeadLetters answers the callers).
    this.#diverged = undefined;
    this.#checked = false;
  }

  async #items(records: readonly EventRecord[]): Promise<DeliveryItem[]> {
    if (!this.sink.needsState) return records.map((record) => ({ record }));
    const out: DeliveryItem[] = [];
    for (const record of records) out.push({ record, row: await this.#tracker.rowAt(record) });
    return out;
  }

  async #advance(next: number, delivered: number): Promise<void> {
    if (this.#abandoned) return;
    this.#cursor = next;
    this.#attempts = 0;
    this.#outage = 0;
    if (delivered > 0)
      this.#set({
        delivered: this.#stats.delivered + delivered,
        last_delivered_at: this.#now().toISOString(),
      });
    const wait = PERSIST_EVERY_MS - (performance.now() - this.#lastPersist);
    if (wait <= 0) await this.#persist();
    // Also while the next delivery is in flight: the durable cursor trails delivery by at most that long.
    else this.#persistTimer ??= setTimeout(() => void this.#persist().catch(() => undefined), wait);
  }

  #record(): CursorRecord {
    const last = this.#stats.last_error;
    return {
      position: this.#cursor,
      ...(last ? { last_error: last } : {}),
      ...(this.#retryPending ? { retry_requested: true } : {}),
    };
  }

  /** Write the cursor record; writes are queued so they land in order. */
  #persist(): Promise<void> {
    clearTimeout(this.#persistTimer);
    this.#persistTimer = undefined;
    const run = this.#persisting.then(async () => {
      if (this.#abandoned) return;
      const rec = this.#record();
      this.#lastPersist = performance.now();
      await writeCursor(this.store, this.name, rec);
      this.#persisted = rec;
    });
    this.#persisting = run.catch(() => undefined);
    return run;
  }

  async #failed(items: readonly DeliveryItem[], e: unknown): Promise<void> {
    // A call the stop gave up on failed once let go of: no attempt, nothing to report (stop did).
    if (this.#abandoned) return;
    const f = e instanceof DeliveryFailure ? e : transientFailure(this.name, reasonOf(e), 0);
    const done = Math.min(f.delivered ?? 0, items.length);
    if (done === items.length) return this.#advance(items.at(-1)!.record.position + 1, done);
    if (done > 0) await this.#advance(items[done]!.record.position, done);
    const last = items.at(-1)!.record.position;
    if (f.maybeWritten) this.#maybeWrittenUntil = Math.max(this.#maybeWrittenUntil, last);
    // Which event failed is known only when the sink names it; a batch written as a whole (one
    // transaction, one file write) names none, and blaming its first event would dead-letter healthy
    // events under another one's error.
    const named = f.delivered !== undefined && (f.permanent || f.isolated);
    const unknown = !named && items.length - done > 1;
    if (unknown && f.permanent) return this.#isolate(last);
    const failing = items[done]!.record;
    // Not reaching the destination says nothing about the event: however long the outage, it costs
    // the event no attempt (the backoff still grows, up to backoff_max_ms).
    if (f.unreachable) this.#outage++;
    else {
      this.#outage = 0;
      this.#attempts++;
    }
    const at = this.#now().toISOString();
    this.#set({ last_error: { code: f.error.code, message: f.error.message, at } });
    this.#failureLog.failed(
      `attempt:${f.error.code}:${f.error.message}`,
      {
        plugin: this.name,
        position: failing.position,
        ...(f.unreachable ? {} : { attempt: this.#attempts }),
        code: f.error.code,
      },
      f.error.message,
    );
    const { delivery } = this.config;
    if (!f.unreachable && (f.permanent || this.#attempts >= delivery.max_attempts)) {
      // Retried as a batch for as long as an event would be (the destination may just be down), but
      // nothing is given up on before the failing event is found: the others are delivered.
      if (unknown) return this.#isolate(last);
      if (delivery.on_failure === 'dead-letter') return this.#deadLetter(failing, f);
      // Blocked: keep retrying at the longest delay until it succeeds or someone intervenes.
      this.#set({
        state: 'blocked',
        next_retry_at: new Date(this.#now().getTime() + delivery.backoff_max_ms).toISOString(),
      });
      await this.#persist();
      await this.#sleep(delivery.backoff_max_ms, false);
      this.#set({ retries: this.#stats.retries + 1 });
      return;
    }
    const delay = backoffDelay(this.#attempts + this.#outage, delivery);
    this.#set({
      state: f.unreachable ? 'unreachable' : 'retrying',
      next_retry_at: new Date(this.#now().getTime() + delay).toISOString(),
    });
    await this.#persist();
    await this.#sleep(delay, false);
    this.#set({ retries: this.#stats.retries + 1 });
  }

  /** Deliver one event at a time up to `until`, each with a fresh set of attempts. */
  #isolate(until: number): void {
    this.#isolateUntil = until;
    this.#attempts = 0;
  }

  async #deadLetter(record: EventRecord, f: DeliveryFailure): Promise<void> {
    if (this.#abandoned) return;
    const attempts = this.#attempts;
    const maybeWritten = record.position <= this.#maybeWrittenUntil;
    this.#attempts = 0;
    this.#outage = 0;
    // The cursor moves past the event once its dead letter is stored (with the cursor, in one write):
    // `plugin status` never shows the event passed (lag 0) without its dead letter, and a failed write
    // leaves the event to be delivered again rather than skipped. No timed cursor write may land after
    // this one with the cursor before it.
    clearTimeout(this.#persistTimer);
    this.#persistTimer = undefined;
    const rec = { ...this.#record(), position: record.position + 1 };
    await this.#persisting;
    await writeDeadLetter(
      this.store,
      {
        plugin: this.name,
        position: record.position,
        aggregate_type: record.aggregate_type,
        aggregate_id: record.aggregate_id,
        version: record.version,
        event_type: record.event_type,
        event_id: record.metadata.event_id,
        code: f.error.code,
        // Said only when it is so: a permanent failure or --max-attempts 1 is tried once.
        reason:
          attempts > 1 ? `${f.error.message} (${attempts} attempts, retried with backoff)` : f.error.message,
        attempts,
        dead_lettered_at: this.#now().toISOString(),
        // An attempt's bytes may be in the destination (a file): `plugin retry` checks before writing.
        ...(maybeWritten ? { outcome_unknown: true as const } : {}),
      },
      rec,
    );
    this.#cursor = rec.position;
    this.#persisted = rec;
    this.#lastPersist = performance.now();
    this.#set({ dead_lettered: this.#stats.dead_lettered + 1 });
    this.#failureLog.warn(
      `dead-letter:${f.error.code}:${f.error.message}:${attempts}`,
      { plugin: this.name, position: record.position, code: f.error.code },
      `event dead-lettered after ${attempts} attempt(s); see \`eventdbx plugin dead-letters ${this.name}\``,
    );
  }

  /**
   * Deliver every dead letter once more, in position order; delivered ones are removed. A file sink
   * writes a dead letter below what its file holds, so each is marked first (see `maybeDelivered`).
   */
  async #retryDeadLetters(): Promise<void> {
    const waiters = this.#retryWaiters.splice(0);
    try {
      if (!(await this.#matches())) {
        for (const w of waiters) w.reject(this.#diverged);
        return;
      }
      const outcome = await this.#retryEach();
      for (const w of waiters) w.resolve(outcome);
    } catch (e) {
      // The store could not be read or written, or the destination read to compare it: the callers
      // are told (the sink's coded error, not its wrapper), not left waiting.
      for (const w of waiters) w.reject(e instanceof DeliveryFailure ? e.error : e);
      throw e;
    }
  }

  async #retryEach(): Promise<RetryOutcome> {
    const outcome = { retried: 0, delivered: 0, failed: 0 };
    // A page at a time: a long outage can leave more dead letters than are worth holding in memory.
    for (let from = 0; !this.#stopped;) {
      const page = await listDeadLetters(this.store, this.name, RETRY_PAGE, from);
      if (page.length === 0) break;
      from = page.at(-1)!.position + 1;
      outcome.retried += page.length;
      for (const d of page) {
        if (this.#stopped) break;
        const result = await this.#retryOne(d);
        if (result !== 'gone') outcome[result]++;
      }
    }
    // A blocked event gets a fresh set of attempts, starting now.
    this.#attempts = 0;
    if (this.#retryPending) {
      this.#retryPending = false;
      await this.#persist();
    }
    return outcome;
  }

  /** Deliver one dead letter again: removed once delivered, kept (one more attempt) when it fails. */
  async #retryOne(d: StoredDeadLetter): Promise<'delivered' | 'failed' | 'gone'> {
    const [record] = await this.readLog(d.position, 1);
    if (!record || record.position !== d.position) {
      await deleteDeadLetter(this.store, this.name, d.position);
      return 'gone';
    }
    // Marked (durably) before the delivery: a crash between the sink's write and the removal below,
    // or a failure after the bytes reached the file, leaves the mark, and the next retry tells the
    // sink the event may be there already. Only then does a file sink read its file to look.
    const maybeDelivered = d.outcome_unknown === true;
    if (!maybeDelivered) await updateDeadLetter(this.store, { ...d, outcome_unknown: true });
    try {
      const items = await this.#items([record]);
      await this.#calls.run(`redelivering the dead letter at position ${d.position}`, () =>
        this.sink.deliver(
          items.map((item) => ({ ...item, retry: true, ...(maybeDelivered ? { maybeDelivered } : {}) })),
        ),
      );
      await deleteDeadLetter(this.store, this.name, d.position);
      this.#set({ delivered: this.#stats.delivered + 1, last_delivered_at: this.#now().toISOString() });
      return 'delivered';
    } catch (e) {
      const f = e instanceof DeliveryFailure ? e : transientFailure(this.name, reasonOf(e), 0);
      await updateDeadLetter(this.store, {
        ...d,
        code: f.error.code,
        reason: f.error.message,
        // Not reaching the destination was no attempt at the event.
        attempts: d.attempts + (f.unreachable ? 0 : 1),
        dead_lettered_at: this.#now().toISOString(),
        // Whatever the sink says it delivered, its bytes may have reached the file (a failed fsync).
        outcome_unknown: true,
      });
      return 'failed';
    }
  }
}
