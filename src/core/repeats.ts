/**
 * Collapsing repeated identical reports, so a dead destination failing every event or a full disk
 * failing every write does not flood the log: the first report of a kind goes out at once, then at
 * most one per interval, saying how many like it were left out meanwhile. Pure: the clock is given.
 *
 * @example
 * const repeats = new RepeatFilter();
 * const left = repeats.pass(`${code}:${message}`);
 * if (left !== undefined) log.warn({ code, ...(left > 0 ? { repeated: left } : {}) }, message);
 */
export class RepeatFilter {
  readonly #seen = new Map<string, { at: number; left: number }>();

  constructor(
    private readonly intervalMs = 60_000,
    private readonly now: () => number = Date.now,
    /** Kinds remembered at most (the oldest is forgotten first). */
    private readonly max = 256,
  ) {}

  /**
   * Whether to report this occurrence of `key`: undefined to leave it out, else the number of
   * occurrences left out since the last one reported.
   */
  pass(key: string): number | undefined {
    const t = this.now();
    const seen = this.#seen.get(key);
    if (seen && t - seen.at < this.intervalMs) {
      seen.left++;
      return undefined;
    }
    this.#seen.delete(key);
    if (this.#seen.size >= this.max) this.#seen.delete(this.#seen.keys().next().value!);
    this.#seen.set(key, { at: t, left: 0 });
    return seen?.left ?? 0;
  }
}
