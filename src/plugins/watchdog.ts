/**
 * Limits on waiting for a sink, so that a stuck destination (a PostgreSQL query that never returns,
 * a SQLite thread or a file write on a hung network mount) can neither hold a plugin in `delivering`
 * for ever with no error nor block the command that stops it (`plugin disable`, a reconfiguration, a
 * replay, the server's own stop).
 *
 * - `Watchdog` gives each call of a sink whose driver has no timeout of its own (HOST_TIMED_KINDS)
 *   the plugin's `timeout_ms`. Past it the call fails as EDBX_ERR_PLUGIN_UNREACHABLE (`plugin status`
 *   shows it), but it is not cancelled — a file system call cannot be, and starting another write
 *   beside it could interleave two batches — so until it ends every further call fails the same way
 *   at once, and nothing more is sent to the destination.
 * - `closeWithin` closes a sink, waiting at most CLOSE_GRACE_MS; past it the sink is let go of
 *   (`Sink.abandon`: the SQLite thread terminated, the PostgreSQL connections cut).
 */
import { type Sink, unreachableFailure } from './types.js';

/** How long stopping a plugin waits for its sink to close before letting go of it. */
export const CLOSE_GRACE_MS = 3_000;

/** True when `p` settled within `ms`, false when it had not by then (its outcome is not looked at). */
export async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = p.then(
    () => true,
    () => true,
  );
  const late = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([settled, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A duration as the log and messages say it: `800 ms`, `3 s`. */
export const duration = (ms: number): string => (ms < 1000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`);

/**
 * Close `sink`, waiting at most `ms`. Undefined when it closed in time; otherwise it is let go of,
 * and the answer says what was let go of (for the log).
 */
export async function closeWithin(sink: Sink, ms = CLOSE_GRACE_MS): Promise<string | undefined> {
  if (await within(sink.close(), ms)) return undefined;
  return sink.abandon?.() ?? 'stopped waiting for it (what it has open is closed when its last call ends)';
}

interface Call {
  readonly what: string;
  /** `performance.now()` when it began: monotonic, so a wall-clock step does not change its duration. */
  readonly since: number;
}

/**
 * The sink calls of one delivery loop: what is in flight (for the log when the loop is stopped), and,
 * for a sink without timeouts of its own, a limit on each (see above).
 *
 * @example
 * const calls = new Watchdog('json', 10_000);
 * await calls.run('delivering positions 3-4', () => sink.deliver(items));
 */
export class Watchdog {
  #current: Call | undefined;
  /** A call that outlived the limit and has not ended yet: nothing more is sent until it does. */
  #stuck: Call | undefined;

  constructor(
    private readonly plugin: string,
    /** The limit on one call; undefined for a sink that times out by itself. */
    private readonly timeoutMs: number | undefined,
  ) {}

  /** What the sink is busy with, and since how long: a call in flight, or one that outlived its limit. */
  get doing(): string | undefined {
    const c = this.#current ?? this.#stuck;
    return c && `${c.what} (for ${duration(Math.round(performance.now() - c.since))})`;
  }

  async run<T>(what: string, call: () => Promise<T>): Promise<T> {
    if (this.#stuck) throw this.#late(this.#stuck);
    const entry: Call = { what, since: performance.now() };
    this.#current = entry;
    const p = call();
    try {
      if (this.timeoutMs === undefined || (await within(p, this.timeoutMs))) return await p;
      this.#stuck = entry;
      p.then(
        () => this.#unstick(entry),
        () => this.#unstick(entry),
      );
      throw this.#late(entry);
    } finally {
      if (this.#current === entry) this.#current = undefined;
    }
  }

  #unstick(entry: Call): void {
    if (this.#stuck === entry) this.#stuck = undefined;
  }

  // The same message for every refusal while one call is stuck: the log collapses them into one line.
  #late(c: Call) {
    return unreachableFailure(
      this.plugin,
      `${c.what} did not finish within ${duration(this.timeoutMs!)} (--timeout; a hung disk or network file system?): nothing more is written until it does`,
    );
  }
}
