/**
 * What `appendOutcome` and `transactionOutcome` resolve to: the records, and whether the server wrote
 * them now or already held them (an idempotent retry of the same `event_id`s: HTTP 200, not 201).
 * Beside the records, never in them: a record stays exactly what the server stored, so that its leaf
 * hash can be recomputed from it (`verifyEvent`).
 */
import type { EventRecord } from '../protocol/index.js';
import type { HttpResponse } from './http.js';

interface Outcome {
  /**
   * The server already held these events, from an earlier call with the same `event_id`s, and wrote
   * nothing (HTTP 200; 201 when it wrote them now). Run once-only side effects when it is false.
   */
  readonly duplicate: boolean;
  /**
   * The request was sent again after an attempt that got no answer (a dropped connection, a
   * timeout, a gateway's 502 or 504; not a refused connection, which sent nothing). That attempt may
   * have written the events, so `duplicate` may then be this call's own write: a side effect keyed by
   * the `event_id` (a message id, a unique row) stays safe either way.
   */
  readonly resent: boolean;
}

/** `appendOutcome`: the event's record and whether it was already appended. */
export interface AppendOutcome extends Outcome {
  readonly record: EventRecord;
}

/** `transactionOutcome`: the events' records (in request order) and whether they were already appended. */
export interface TransactionOutcome extends Outcome {
  readonly records: EventRecord[];
}

export const outcomeOf = (res: HttpResponse<unknown>): Outcome => ({
  duplicate: res.status === 200,
  resent: res.unanswered > 0,
});
