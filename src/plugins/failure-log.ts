/**
 * What a delivery loop logs about its failures. A dead destination fails every event alike, so
 * identical lines are logged the first time, then at most once a minute with the number left out
 * meanwhile (`"repeated": n`, see core/repeats.ts). A count left out is never lost: once its minute has
 * passed it is logged even if no line of its kind follows (a timer, unref'd), and when delivery
 * recovers or the loop stops every count is logged, then a line saying that delivery resumed. A
 * delayed line is the last occurrence left out, carrying the number before it, so each line always
 * stands for itself plus its `repeated`: an alert summing them counts every failure and dead letter.
 */
import { type LeftOut, RepeatFilter } from '../core/repeats.js';
import type { PluginLogger } from './types.js';

interface Line {
  readonly level: 'info' | 'warn' | 'error';
  readonly fields: object;
  readonly msg: string;
}

export class FailureLog {
  readonly #repeats: RepeatFilter<Line>;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  /** Failures since the last delivery, and when the first of them happened. */
  #failures = 0;
  #since: string | undefined;

  constructor(
    private readonly plugin: string,
    private readonly log: PluginLogger,
    intervalMs = 60_000,
  ) {
    this.#repeats = new RepeatFilter(intervalMs);
  }

  /** A failed delivery (`key`: its kind, lines of one kind are collapsed), logged at `warn`. */
  failed(key: string, fields: object, msg: string): void {
    this.#failures++;
    this.#since ??= new Date().toISOString();
    this.warn(key, fields, msg);
  }

  /** A line a failing destination repeats for every event (a dead letter), collapsed by `key`. */
  warn(key: string, fields: object, msg: string): void {
    this.#note(key, { level: 'warn', fields, msg });
  }

  /** A line that stops delivery (a diverged destination), collapsed by `key`, logged at `error`. */
  error(key: string, fields: object, msg: string): void {
    this.#note(key, { level: 'error', fields, msg });
  }

  /** A delivery went through: after failures, their counts left out are logged, then the recovery. */
  delivered(position: number): void {
    if (this.#failures === 0) return;
    const failures = this.#failures;
    const since = this.#since;
    this.#failures = 0;
    this.#since = undefined;
    this.#flush(this.#repeats.due(true));
    this.#note('recovered', {
      level: 'info',
      fields: { plugin: this.plugin, position, failures, since },
      msg: `${this.plugin} delivery resumed after ${failures} failed attempt(s)`,
    });
  }

  /** The loop stops: every count left out is logged now. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#flush(this.#repeats.due(true));
  }

  #note(key: string, line: Line): void {
    const left = this.#repeats.pass(key, line);
    if (left === undefined) return this.#arm();
    this.log[line.level]({ ...line.fields, ...(left > 0 ? { repeated: left } : {}) }, line.msg);
  }

  /** Wake when the first kind left out may be logged: no later line may come to carry its count. */
  #arm(): void {
    if (this.#timer || this.#closed) return;
    const wait = this.#repeats.nextDue();
    if (wait === undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#flush(this.#repeats.due());
      this.#arm();
    }, wait);
    // A log line is no reason to keep the process alive.
    this.#timer.unref();
  }

  /** Each kind's last line left out, carrying the number left out before it. */
  #flush(left: ReadonlyArray<LeftOut<Line>>): void {
    for (const { left: n, last } of left)
      this.log[last.level]({ ...last.fields, ...(n > 1 ? { repeated: n - 1 } : {}) }, last.msg);
  }
}
