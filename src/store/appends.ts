/**
 * What an append asks of the writer: the aggregates and `event_id`s it reads before its job runs,
 * and the job itself, which checks the token (scope, allowance), appends each event, and charges the
 * token for the events it wrote (idempotent replays are free).
 */
import { atEvent, err } from '../core/errors.js';
import type { EventRecord } from '../core/event.js';
import { aggregateId, aggregateType, eventId as checkEventId, eventRef } from '../core/names.js';
import { afterUse, authorize, issuerOf } from '../core/tokens.js';
import type { EventStore } from './store.js';
import { type AppendResult, type WriteTx, conflictWithin, refuseMixedRetry } from './tx.js';
import type { AppendRequest, WriteContext } from './types.js';
import type { Prefetch } from './writer.js';

/**
 * What a refusal of the event `i` of `reqs` throws: the error naming the event (`events[1] (patient/p-031):
 * …`) when the appends are a transaction's (`named`), else the error as it is.
 */
export type EventRefusal = (i: number, e: unknown) => unknown;

export const refusalOf =
  (reqs: readonly AppendRequest[], named: boolean): EventRefusal =>
  (i, e) =>
    named ? atEvent(e, eventRef(i, reqs[i])) : e;

/** Run `fn` for the event `i`, its refusal naming the event (see refusalOf). */
function forEvent<T>(refused: EventRefusal, i: number, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw refused(i, e);
  }
}

/** What the writer reads for these appends before their job runs; names are checked here. */
export function prefetchOf(reqs: readonly AppendRequest[], refused: EventRefusal = (_, e) => e): Prefetch {
  const aggregates: Array<readonly [string, string]> = [];
  const eventIds: string[] = [];
  const seen = new Set<string>();
  reqs.forEach((r, i) =>
    forEvent(refused, i, () => {
      aggregates.push([aggregateType(r.aggregate_type), aggregateId(r.aggregate_id)]);
      if (r.event_id !== undefined) {
        const id = checkEventId(r.event_id);
        if (seen.has(id)) throw err('EDBX_ERR_DUPLICATE_EVENT_ID', { event_id: id });
        seen.add(id);
        eventIds.push(id);
      }
    }),
  );
  return { aggregates, eventIds };
}

/** The writer job of EventStore.appendDetailed: the appends `reqs` in `tx`, charged to ctx's token. */
export function appendIn(
  store: EventStore,
  tx: WriteTx,
  reqs: readonly AppendRequest[],
  ctx: WriteContext,
  refused: EventRefusal = (_, e) => e,
): Array<{ record: EventRecord; duplicate: boolean }> {
  const token = ctx.tokenHash === undefined ? undefined : tx.token(ctx.tokenHash, store.tokens);
  if (ctx.tokenHash !== undefined && !token) throw err('EDBX_ERR_TOKEN_UNKNOWN');
  const now = store.env.now();
  if (token) {
    // The token itself first (revoked, expired, read-only: no event's to fix), then each event's scope.
    authorize(token, now, { write: true, allowanceChecked: 'by-transaction' });
    reqs.forEach((r, i) =>
      forEvent(refused, i, () =>
        authorize(token, now, {
          write: true,
          aggregate: { type: r.aggregate_type, id: r.aggregate_id },
          allowanceChecked: 'by-transaction',
        }),
      ),
    );
  }
  // The token charged is the one the events record: its person and its id.
  const by = token ? { ...ctx, issuedBy: issuerOf(token) } : ctx;
  const results: AppendResult[] = [];
  reqs.forEach((r, i) =>
    results.push(
      forEvent(refused, i, () => {
        try {
          return tx.append(r, by, { laterIdConflict: true });
        } catch (e) {
          throw conflictWithin(e, results, 'transaction', (j) => j);
        }
      }),
    ),
  );
  // A retry of an earlier transaction mixed with new events: named by its first replayed event.
  const replayed = results.findIndex((r) => r.duplicate);
  if (replayed >= 0) forEvent(refused, replayed, () => refuseMixedRetry(results));
  const wrote = results.filter((r) => !r.duplicate).length;
  if (token && token.remaining !== null && wrote > token.remaining) {
    throw err('EDBX_ERR_TOKEN_EXHAUSTED', {
      id: token.id,
      limit: token.limit,
      ...(token.remaining === 0 ? {} : { remaining: token.remaining, needed: wrote }),
    });
  }
  // Only where the events would otherwise be written: the answer then tells no more about other
  // aggregates than an unused id's would, short of writing (the job's refusal undoes its appends).
  const elsewhere = results.findIndex((r) => r.usedElsewhere !== undefined);
  if (elsewhere >= 0)
    throw refused(
      elsewhere,
      err('EDBX_ERR_EVENT_ID_CONFLICT', { event_id: results[elsewhere]!.usedElsewhere }),
    );
  const used = token && afterUse(token, now, wrote);
  if (used && used !== token) tx.setToken(used);
  return results;
}
