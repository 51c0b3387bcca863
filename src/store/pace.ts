/**
 * The pace of a long read: every few records it lets the event loop run once, and stops (with the
 * signal's coded reason, `throwIfAborted`) when its signal was aborted meanwhile.
 *
 * Both are needed. The records of a read are decoded on the main thread, a chunk of a native read at a
 * time, with nothing but microtasks between them: without a turn of the event loop the socket of a
 * client that went away is not read, so its close is not seen (and its signal not aborted) until the
 * whole page is built; and other requests (`/health`, appends) wait behind it all that time.
 */
import { throwIfAborted } from '../core/errors.js';

/** Records decoded between two looks at the signal: a few milliseconds of work at most. */
export const PACE_RECORDS = 64;

/** One macrotask turn: the poll phase (sockets, timers) runs before the read goes on. */
export const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * @example
 * const pace = new Pace(opts.signal);
 * for await (const [k, v] of engine.range('main', range)) {
 *   out.push(decode(k, v));
 *   if (pace.due()) await pace.turn();
 * }
 */
export class Pace {
  #since = 0;

  /** `every` records between turns; without a signal, turns only (a read that cannot be cancelled). */
  constructor(
    private readonly signal: AbortSignal | undefined,
    private readonly every = PACE_RECORDS,
  ) {}

  /** Count `n` records handled: true once `every` were since the last turn. */
  due(n = 1): boolean {
    this.#since += n;
    return this.#since >= this.every;
  }

  /** Let the event loop run once, then stop if the signal was aborted (EDBX_ERR_CANCELLED or its reason). */
  async turn(): Promise<void> {
    this.#since = 0;
    await nextTurn();
    throwIfAborted(this.signal);
  }
}
