/**
 * What a delivery loop logs about its failures. A dead destination fails every event alike, so
 * identical lines are logged the first time, then at most once a minute with the number left out
 * meanwhile (`"repeated": n`, see core/repeat-log.ts). A count left out is never lost: once its minute
 * has passed it is logged even if no line of its kind follows, and when delivery recovers or the loop
 * stops every count is logged, then a line saying that delivery resumed.
 */
import { RepeatLog } from '../core/repeat-log.js';
import type { PluginLogger } from './types.js';

export class FailureLog {
  readonly #lines: RepeatLog;
  /** Failures since the last delivery, and when the first of them happened. */
  #failures = 0;
  #since: string | undefined;

  constructor(
    private readonly plugin: string,
    log: PluginLogger,
    intervalMs = 60_000,
  ) {
    this.#lines = new RepeatLog(log, intervalMs);
  }

  /** A failed delivery (`key`: its kind, lines of one kind are collapsed), logged at `warn`. */
  failed(key: string, fields: object, msg: string): void {
    this.#failures++;
    this.#since ??= new Date().toISOString();
    this.warn(key, fields, msg);
  }

  /** A line a failing destination repeats for every event (a dead letter), collapsed by `key`. */
  warn(key: string, fields: object, msg: string): void {
    this.#lines.note(key, { level: 'warn', fields, msg });
  }

  /** A line that stops delivery (a diverged destination), collapsed by `key`, logged at `error`. */
  error(key: string, fields: object, msg: string): void {
    this.#lines.note(key, { level: 'error', fields, msg });
  }

  /** A delivery went through: after failures, their counts left out are logged, then the recovery. */
  delivered(position: number): void {
    if (this.#failures === 0) return;
    const failures = this.#failures;
    const since = this.#since;
    this.#failures = 0;
    this.#since = undefined;
    this.#lines.flush();
    this.#lines.note('recovered', {
      level: 'info',
      fields: { plugin: this.plugin, position, failures, since },
      msg: `${this.plugin} delivery resumed after ${failures} failed attempt(s)`,
    });
  }

  /** The loop stops: every count left out is logged now. */
  close(): void {
    this.#lines.close();
  }
}
