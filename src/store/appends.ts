/**
 * What an append asks of the writer: the aggregates and `event_id`s it reads before its job runs,
 * and the job itself, which checks the token (scope, allowance), appends each event, and charges the
 * token for the events it wrote (idempotent replays are free).
 */
import { err } from '../core/errors.js';
import type { EventRecord } from '../core/event.js';
import { aggregateId, aggregateType, eventId as checkEventId } from '../core/names.js';
import { afterUse, authorize, issuerOf } from '../core/tokens.js';
import type { EventStore } from './store.js';
import { type WriteTx, refuseMixedRetry } from './tx.js';
import type { AppendRequest, WriteContext } from './types.js';
import type { Prefetch } from './writer.js';

/** What the writer reads for these appends before their job runs; names are checked here. */
export function prefetchOf(reqs: readonly AppendRequest[]): Prefetch {
  const aggregates: Array<readonly [string, string]> = [];
  const eventIds: string[] = [];
  const seen = new Set<string>();
  for (const r of reqs) {
    aggregates.push([aggregateType(r.aggregate_type), aggregateId(r.aggregate_id)]);
    if (r.event_id !== undefined) {
      const id = checkEventId(r.event_id);
      if (seen.has(id)) throw err('EDBX_ERR_DUPLICATE_EVENT_ID', { event_id: id });
      seen.add(id);
      eventIds.push(id);
    }
  }
  return { aggregates, eventIds };
}

/** The writer job of EventStore.appendDetailed: the appends `reqs` in `tx`, charged to ctx's token. */
export function appendIn(
  store: EventStore,
  tx: WriteTx,
  reqs: readonly AppendRequest[],
  ctx: WriteContext,
): Array<{ record: EventRecord; duplicate: boolean }> {
  const token = ctx.tokenHash === undefined ? undefined : tx.token(ctx.tokenHash, store.tokens);
  if (ctx.tokenHash !== undefined && !token) throw err('EDBX_ERR_TOKEN_UNKNOWN');
  const now = store.env.now();
  if (token) {
    for (const r of reqs) {
      authorize(token, now, {
        write: true,
        aggregate: { type: r.aggregate_type, id: r.aggregate_id },
        allowanceChecked: 'by-transaction',
      });
    }
  }
  // The token charged is the one the events record: its person and its id.
  const by = token ? { ...ctx, issuedBy: issuerOf(token) } : ctx;
  const results = reqs.map((r) => tx.append(r, by, { laterIdConflict: true }));
  refuseMixedRetry(results);
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
  const elsewhere = results.find((r) => r.usedElsewhere !== undefined);
  if (elsewhere) throw err('EDBX_ERR_EVENT_ID_CONFLICT', { event_id: elsewhere.usedElsewhere });
  const used = token && afterUse(token, now, wrote);
  if (used && used !== token) tx.setToken(used);
  return results;
}
