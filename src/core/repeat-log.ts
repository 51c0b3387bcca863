/**
 * A log that collapses identical lines (core/repeats.ts) without losing their counts: the first line
 * of a kind is logged at once, later ones at most once per interval with the number left out
 * meanwhile (`"repeated": n`). What is left out is logged even if no line of its kind follows: once
 * its interval has passed (a timer, unref'd), when the caller says the failure ended (`flush`), and
 * when the log is closed (the server or loop stops). A delayed line is the last occurrence left out,
 * carrying the number before it, so each line stands for itself plus its `repeated`: an alert summing
 * them counts every occurrence. Used by the HTTP error edge, the control socket and plugin delivery.
 *
 * @example
 * const lines = new RepeatLog(app.log);
 * lines.note(`${code}:${tokenId}`, { level: 'warn', fields: { code, token_id: tokenId }, msg: 'authentication refused' });
 * // At stop: every count left out is logged now.
 * lines.close();
 */
import { type LeftOut, RepeatFilter } from './repeats.js';

export type LogLevel = 'info' | 'warn' | 'error';

/** Where the lines go (a pino logger, a plugin's logger): one method per level it is given. */
export type LevelLog<L extends LogLevel = LogLevel> = {
  readonly [K in L]: (fields: object, msg: string) => void;
};

export interface LogLine<L extends LogLevel = LogLevel> {
  readonly level: L;
  readonly fields: object;
  readonly msg: string;
}

export class RepeatLog<L extends LogLevel = LogLevel> {
  readonly #repeats: RepeatFilter<LogLine<L>>;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    private readonly log: LevelLog<L>,
    /** How long identical lines are collapsed into one (tests make it short). */
    intervalMs = 60_000,
  ) {
    this.#repeats = new RepeatFilter(intervalMs);
  }

  /** Log `line`, or count it when one of its kind (`key`) was logged less than an interval ago. */
  note(key: string, line: LogLine<L>): void {
    // Closed: no timer would log a count left out, so every line goes out as it comes.
    if (this.#closed) return this.#write(line, 0);
    const left = this.#repeats.pass(key, line);
    if (left === undefined) return this.#arm();
    this.#write(line, left);
  }

  /** The failure ended (a destination delivers again): every count left out is logged now. */
  flush(): void {
    this.#flush(this.#repeats.due(true));
  }

  /** The reporter stops: every count left out is logged now, and later lines are not collapsed. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.flush();
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
  #flush(left: ReadonlyArray<LeftOut<LogLine<L>>>): void {
    for (const { left: n, last } of left) this.#write(last, n - 1);
  }

  #write(line: LogLine<L>, repeated: number): void {
    this.log[line.level]({ ...line.fields, ...(repeated > 0 ? { repeated } : {}) }, line.msg);
  }
}
