/**
 * Collapsing repeated identical reports, so a dead destination failing every event or a full disk
 * failing every write does not flood the log: the first report of a kind goes out at once, then at
 * most one per interval, saying how many like it were left out meanwhile. What is left out is never
 * lost: the caller asks for the kinds whose interval has passed (`due()`, on a timer) and for all of
 * them when the failure stops (`due(true)`), each with its last occurrence. Pure: the clock is given;
 * core/repeat-log.ts runs the timer for a logger.
 *
 * @example
 * const repeats = new RepeatFilter<object>();
 * const left = repeats.pass(`${code}:${message}`, fields);
 * if (left !== undefined) log.warn({ ...fields, ...(left > 0 ? { repeated: left } : {}) }, message);
 * // Later (a timer, a recovery): the last one left out stands for the others before it.
 * for (const { left, last } of repeats.due())
 *   log.warn({ ...last, ...(left > 1 ? { repeated: left - 1 } : {}) }, message);
 */
export interface LeftOut<T> {
  readonly key: string;
  /** Occurrences left out since the kind was last reported (at least 1). */
  readonly left: number;
  /** The last of them, as given to `pass`. */
  readonly last: T;
}

interface Seen<T> {
  at: number;
  left: number;
  last: T | undefined;
}

export class RepeatFilter<T = undefined> {
  readonly #seen = new Map<string, Seen<T>>();

  constructor(
    private readonly intervalMs = 60_000,
    // Monotonic by default: a wall-clock step back must not keep a kind collapsed for hours.
    private readonly now: () => number = () => performance.now(),
    /** Kinds remembered at most (the oldest is forgotten first). */
    private readonly max = 256,
  ) {}

  /**
   * Whether to report this occurrence of `key`: undefined to leave it out, else the number of
   * occurrences left out since the last one reported. `last` is kept for `due`.
   */
  pass(key: string, last?: T): number | undefined {
    const t = this.now();
    const seen = this.#seen.get(key);
    if (seen && t - seen.at < this.intervalMs) {
      seen.left++;
      seen.last = last;
      return undefined;
    }
    this.#seen.delete(key);
    if (this.#seen.size >= this.max) this.#seen.delete(this.#seen.keys().next().value!);
    this.#seen.set(key, { at: t, left: 0, last: undefined });
    return seen?.left ?? 0;
  }

  /**
   * The kinds with occurrences left out whose interval has passed (`all`: whatever their interval, as
   * when the failure stopped or the reporter stops), each counted as reported now: the next occurrence
   * is left out again for an interval. Ask again after `nextDue()` ms.
   */
  due(all = false): Array<LeftOut<T>> {
    const t = this.now();
    const out: Array<LeftOut<T>> = [];
    for (const [key, seen] of this.#seen) {
      if (seen.left === 0 || (!all && t - seen.at < this.intervalMs)) continue;
      out.push({ key, left: seen.left, last: seen.last as T });
      seen.at = t;
      seen.left = 0;
      seen.last = undefined;
    }
    return out;
  }

  /** Milliseconds until `due()` has something to give, or undefined when nothing is left out. */
  nextDue(): number | undefined {
    const t = this.now();
    let next: number | undefined;
    for (const seen of this.#seen.values()) {
      if (seen.left === 0) continue;
      const wait = Math.max(0, seen.at + this.intervalMs - t);
      next = next === undefined ? wait : Math.min(next, wait);
    }
    return next;
  }
}
