/**
 * Staging and commit: appends recorded durably but invisible until `commitStaged` appends them all,
 * across aggregates, atomically (the CLI's `aggregate apply --stage` and `aggregate commit`). Each runs
 * as an exclusive writer job.
 */
import { err, toEventDbxError } from '../core/errors.js';
import { type EventRecord, eventIssuer, normalizePayload } from '../core/event.js';
import { aggregateId, aggregateType, eventId, eventType, expectedVersion } from '../core/names.js';
import { prefixEnd } from '../storage/engine.js';
import { openJson, sealJson } from './codec.js';
import * as K from './keys.js';
import type { EventStore } from './store.js';
import { type WriteTx, refuseMixedRetry } from './tx.js';
import type { AppendRequest, StagedEvent, WriteContext } from './types.js';

/** Record an append as staged: durable, but invisible until `commitStaged`. */
export async function stageEvent(
  store: EventStore,
  input: AppendRequest,
  ctx: WriteContext,
): Promise<StagedEvent> {
  const req: AppendRequest = {
    aggregate_type: aggregateType(input.aggregate_type),
    aggregate_id: aggregateId(input.aggregate_id),
    event_type: eventType(input.event_type),
    payload: normalizePayload(input.payload, store.env.maxPayloadBytes),
    ...(input.expected_version === undefined
      ? {}
      : { expected_version: expectedVersion(input.expected_version) }),
    ...(input.event_id === undefined ? {} : { event_id: eventId(input.event_id) }),
  };
  return store.exclusive([], async (tx) => {
    const stage = await listStaged(store);
    const staged: StagedEvent = {
      seq: (stage.at(-1)?.seq ?? 0) + 1,
      request: req,
      issued_by: eventIssuer(ctx.issuedBy),
      staged_at: store.env.now().toISOString(),
    };
    // Validate now, as `commit` would (schemas, expected versions, idempotency, archived aggregates,
    // after the events staged before it), so a bad event is refused when staged rather than blocking
    // the whole stage at commit. The rehearsal's appends are rolled back.
    const rollback = tx.savepoint();
    try {
      await rehearse(tx, stage, staged);
    } finally {
      rollback();
    }
    tx.put(K.stagedKey(staged.seq), sealJson(store.env.codec, staged));
    return staged;
  });
}

/**
 * Append staged events (and `extra`, whose refusal is reported as is) to a transaction. A staged event
 * that is refused is named, with how to get past it.
 */
async function rehearse(
  tx: WriteTx,
  stage: readonly StagedEvent[],
  extra?: StagedEvent,
): Promise<EventRecord[]> {
  const all = extra ? [...stage, extra] : stage;
  await tx.fetch(
    all.map((s) => [s.request.aggregate_type, s.request.aggregate_id] as const),
    all.flatMap((s) => (s.request.event_id === undefined ? [] : [s.request.event_id])),
  );
  const refused = (s: StagedEvent, e: unknown) => {
    const cause = toEventDbxError(e);
    if (s === extra || cause.kind !== 'user') return cause;
    return err('EDBX_ERR_STAGED_EVENT_REFUSED', {
      seq: s.seq,
      event: `${s.request.event_type} on ${s.request.aggregate_type}/${s.request.aggregate_id}`,
      reason: cause.message,
      cause: cause.code,
    });
  };
  const results = all.map((s) => {
    try {
      return tx.append(s.request, { issuedBy: s.issued_by });
    } catch (e) {
      throw refused(s, e);
    }
  });
  // An event already appended has nothing to stage; a stage is committed whole, so one that mixes an
  // event appended since (same event id) with new ones is refused like such a transaction.
  const last = results.at(-1);
  if (extra && last?.duplicate)
    throw err('EDBX_ERR_EVENT_ID_CONFLICT', {
      event_id: last.record.metadata.event_id,
      reason: 'by an event already appended: there is nothing to stage',
    });
  try {
    refuseMixedRetry(results);
  } catch (e) {
    throw refused(all[results.findIndex((r) => r.duplicate)]!, e);
  }
  return results.map((r) => r.record);
}

const STAGED_KEY_BYTES = K.stagedKey(0).length;

/**
 * The staged events in staging order. Sealing does not bind a value to its key, so a staged record
 * copied or moved to another key (reordering or repeating what commit appends) opens fine: each must
 * carry the sequence number of its key.
 */
export async function listStaged(store: EventStore): Promise<StagedEvent[]> {
  const out: StagedEvent[] = [];
  for await (const [k, v] of store.engine.range('main', {
    gte: K.stagedPrefix(),
    lt: prefixEnd(K.stagedPrefix()),
  })) {
    const seq = K.readU64(k, 1);
    const where = `staged event ${seq}`;
    const staged = openJson<StagedEvent | null>(store.env.codec, v, where);
    const repeated = out.length > 0 && out.at(-1)!.seq >= seq;
    if (k.length !== STAGED_KEY_BYTES || staged?.seq !== seq || repeated)
      throw err('EDBX_ERR_INTEGRITY', {
        where,
        reason: `the record is staged event ${String(staged?.seq)}: it does not belong at this key (drop the stage with \`eventdbx aggregate commit --discard\`)`,
      });
    out.push(staged);
  }
  return out;
}

/**
 * Append every staged event — across aggregates — atomically, in staging order, then clear the stage.
 * If any staged event is refused, nothing is committed and the stage is kept (`discardStaged` drops it).
 */
export function commitStaged(store: EventStore): Promise<EventRecord[]> {
  return store.exclusive([], async (tx) => {
    const staged = await listStaged(store);
    // Nothing staged commits nothing, successfully: the spec's `commit` is a no-op that scripts call.
    if (staged.length === 0) return [];
    const records = await rehearse(tx, staged);
    for (const s of staged) tx.del(K.stagedKey(s.seq));
    return records;
  });
}

/**
 * Drop every staged event without appending any; returns what was dropped. A damaged stage (a record
 * that does not open, or is not at its key) is dropped whole too: that is how it is cleared.
 */
export function discardStaged(store: EventStore): Promise<StagedEvent[]> {
  return store.exclusive([], async (tx) => {
    const dropped: StagedEvent[] = [];
    for await (const [k, v] of store.engine.range('main', {
      gte: K.stagedPrefix(),
      lt: prefixEnd(K.stagedPrefix()),
    })) {
      tx.del(k);
      try {
        const staged = openJson<StagedEvent | null>(store.env.codec, v, 'staged event');
        if (staged && k.length === STAGED_KEY_BYTES && staged.seq === K.readU64(k, 1)) dropped.push(staged);
      } catch {
        // Unreadable: dropped all the same, not listed.
      }
    }
    return dropped;
  });
}
