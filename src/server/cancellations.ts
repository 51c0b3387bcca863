/**
 * The long reads a server is running, each with an AbortSignal: aborted with EDBX_ERR_CANCELLED when
 * its client goes away before the answer, and with the stop signal's reason (EDBX_ERR_SHUTTING_DOWN)
 * when the server stops. HTTP requests (in-flight.ts) and control-socket commands (control.ts) both
 * take their signals here.
 */
import { err } from '../core/errors.js';

export interface Running {
  readonly signal: AbortSignal;
  /** Its client went away: no one will read the answer. */
  cancel(): void;
  /** Answered (or cancelled): the server's stop no longer concerns it. */
  end(): void;
}

export class Cancellations {
  readonly #running = new Set<AbortController>();

  constructor(private readonly stop: AbortSignal) {
    stop.addEventListener('abort', () => {
      for (const c of this.#running) c.abort(stop.reason);
    });
  }

  /** A signal for one piece of work, already aborted when the server is stopping. */
  open(): Running {
    const controller = new AbortController();
    if (this.stop.aborted) controller.abort(this.stop.reason);
    this.#running.add(controller);
    return {
      signal: controller.signal,
      cancel: () => controller.abort(err('EDBX_ERR_CANCELLED')),
      end: () => this.#running.delete(controller),
    };
  }
}
