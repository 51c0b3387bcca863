/**
 * The store's one clock for the times it records (events' and audit entries' `created_at`, aggregates'
 * `updated_at`, tokens' `revoked_at`, snapshots, checkpoints, backups, plugin states): the wall clock,
 * but never earlier than the newest time it already gave or found stored (the high-water mark). A
 * wall clock stepped back (an NTP step, a VM resumed, an operator's mistake) would otherwise stamp a
 * later commit with an earlier time than the one before it, and `audit list --since` would miss it;
 * held at the mark, times never go backwards, and follow the wall clock again once it catches up.
 * Expiry is judged by the same clock: a clock stepped back brings no expired token back to life.
 *
 * The store reports a wall clock behind the mark by more than CLOCK_TOLERANCE_MS, once per episode
 * (`onLag`); the server logs it, the CLI writes it to stderr (`clockLagMessage`).
 *
 * @example
 * const clock = new HighWaterClock(() => new Date());
 * clock.advance('2026-11-28T02:26:47.104Z'); // the newest time stored
 * clock.now(); // the wall clock's time, or 2026-11-28T02:26:47.104Z while the wall clock is behind it
 */

/** How far the wall clock may be behind the mark before it is reported (times are held all the same). */
export const CLOCK_TOLERANCE_MS = 1000;

/** A wall clock behind the newest recorded time (an episode, reported once). */
export interface ClockLag {
  /** How far the wall clock was behind when the episode began, in ms. */
  readonly behind_ms: number;
  /** The time recorded times are held at (ISO 8601). */
  readonly held_at: string;
}

/** Told when an episode begins (the lag), and when the wall clock has caught up (undefined). */
export type ClockLagListener = (lag: ClockLag | undefined) => void;

export class HighWaterClock {
  /** The newest time given or found stored, in ms since the epoch (-Infinity before any). */
  #mark = Number.NEGATIVE_INFINITY;
  #lag: ClockLag | undefined;
  readonly #listeners = new Set<ClockLagListener>();
  #error: (e: unknown) => void = (e) =>
    process.emitWarning(`EventDBX clock listener failed: ${e instanceof Error ? e.message : String(e)}`, {
      code: 'EDBX_LISTENER_FAILED',
    });

  constructor(private readonly wall: () => Date) {}

  /** The time to record now: the wall clock's, or the mark while the wall clock is behind it. */
  now(): Date {
    const wall = this.wall().getTime();
    this.#observe(wall);
    if (wall >= this.#mark) this.#mark = wall;
    return new Date(this.#mark);
  }

  /** Raise the mark to a time recorded (found at open, or committed); earlier or invalid times are ignored. */
  advance(at: Date | string | number): void {
    const t = at instanceof Date ? at.getTime() : typeof at === 'string' ? Date.parse(at) : at;
    if (Number.isFinite(t) && t > this.#mark) this.#mark = t;
  }

  /** How far the wall clock is behind the mark now, in ms (0 when it is not): for a gauge. */
  behindMs(): number {
    const wall = this.wall().getTime();
    this.#observe(wall);
    return wall >= this.#mark ? 0 : this.#mark - wall;
  }

  /** The episode under way (undefined while the wall clock is not behind by more than the tolerance). */
  get lag(): ClockLag | undefined {
    return this.#lag;
  }

  /**
   * Told when the wall clock falls behind the mark by more than CLOCK_TOLERANCE_MS (once per episode)
   * and when it has caught up; at once when an episode is under way. Returns the function that stops
   * telling.
   */
  onLag(listener: ClockLagListener): () => void {
    this.#listeners.add(listener);
    if (this.#lag) this.#tell(listener, this.#lag);
    return () => this.#listeners.delete(listener);
  }

  /** Where failures of lag listeners are reported (default: a process warning). */
  onListenerError(report: (e: unknown) => void): void {
    this.#error = report;
  }

  /** Begin or end an episode for a reading of the wall clock (the mark not yet moved by it). */
  #observe(wall: number): void {
    if (this.#lag === undefined) {
      if (this.#mark - wall <= CLOCK_TOLERANCE_MS) return;
      const lag = { behind_ms: this.#mark - wall, held_at: new Date(this.#mark).toISOString() };
      this.#lag = lag;
      for (const l of this.#listeners) this.#tell(l, lag);
    } else if (wall >= this.#mark) {
      this.#lag = undefined;
      for (const l of this.#listeners) this.#tell(l, undefined);
    }
  }

  /** A listener (a logger) must not fail the write whose time it was told about. */
  #tell(listener: ClockLagListener, lag: ClockLag | undefined): void {
    try {
      listener(lag);
    } catch (e) {
      this.#error(e);
    }
  }
}

/** A duration for a person: `850 ms`, `42 s`, `10 min 3 s`, `3 h 0 min`, `2 d 4 h`. */
export function clockDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
}

/** What the server logs and the CLI writes when the wall clock falls behind, or catches up (undefined). */
export function clockLagMessage(lag: ClockLag | undefined): string {
  if (lag === undefined)
    return 'the system clock caught up with the newest recorded time: recorded times follow it again';
  return (
    `the system clock is ${clockDuration(lag.behind_ms)} behind the newest time this store recorded ` +
    `(${lag.held_at}; it went back, or was ahead before): recorded times (created_at, updated_at, ` +
    `revoked_at, checkpoints, backups) are held at ${lag.held_at} until the clock catches up, so they ` +
    'never go backwards; check the time source (NTP) of this host'
  );
}
