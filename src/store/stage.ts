/**
 * Staging and commit: appends recorded durably but invisible until `commitStaged` appends them all,
 * across aggregates, atomically (the CLI's `aggregate apply --stage` and `aggregate commit`). Each runs
 * as an exclusive writer job.
 */
import { err, shown, toEventDbxError } from '../core/errors.js';
import {
  type EventIssuer,
  type EventRecord,
  type Payload,
  eventIssuer,
  normalizePayload,
  samePayload,
} from '../core/event.js';
import { aggregateId, aggregateType, eventId, eventType, expectedVersion } from '../core/names.js';
import { prefixEnd } from '../storage/engine.js';
import { openJson, sealJson } from './codec.js';
import * as K from './keys.js';
import type { EventStore } from './store.js';
import { type AppendResult, type WriteTx, conflictWithin, refuseMixedRetry } from './tx.js';
import type { AppendRequest, StagedEvent, WriteContext } from './types.js';

/**
 * What staging an event did. `duplicate` says nothing new was recorded: the event, under its event
 * id, is already staged (`staged` is that entry) or already appended (`event` is the original record,
 * as `aggregate apply` answers a retry, and nothing is staged).
 */
export type StageOutcome =
  | { readonly staged: StagedEvent; readonly duplicate: boolean }
  | { readonly event: EventRecord; readonly duplicate: true; readonly staged: null };

/**
 * Record an append as staged: durable, but invisible until `commitStaged`. Staging is safe to repeat
 * with an `event_id`: the same event again is answered with the staged entry, or with the record once
 * it is appended, and stages nothing (a script re-run after a commit whose outcome was lost appends
 * each event once).
 *
 * @example
 * const r = await stageEvent(store, { ...debit, event_id: 'tr-42-d' }, ctx);
 * if (r.staged === null) console.log('already appended at version', r.event.version);
 */
export async function stageEvent(
  store: EventStore,
  input: AppendRequest,
  ctx: WriteContext,
): Promise<StageOutcome> {
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
    await fetchFor(tx, [...stage, staged]);
    // A retry is answered before the stage is checked: whether this event is already appended or
    // staged does not depend on the rest of the stage (commit reports a stage that cannot be appended).
    const retried = req.event_id === undefined ? undefined : alreadyThere(tx, stage, staged, req.event_id);
    if (retried) return retried;
    // Validate now, as `commit` would (schemas, expected versions, idempotency, archived aggregates,
    // after the events staged before it), so a bad event is refused when staged rather than blocking
    // the whole stage at commit. The rehearsal's appends are rolled back.
    const rollback = tx.savepoint();
    try {
      rehearse(tx, stage, staged);
    } finally {
      rollback();
    }
    tx.put(K.stagedKey(staged.seq), sealJson(store.env.codec, staged));
    return { staged, duplicate: false };
  });
}

/**
 * The answer to staging `extra` again under `id`: the original record if the id is appended, the
 * staged entry if it is staged, when it is the same event; a refusal that says what differs if not.
 * Undefined when the id is new. (The committed record is in `tx.idem`: nothing was rehearsed yet.)
 */
function alreadyThere(
  tx: WriteTx,
  stage: readonly StagedEvent[],
  extra: StagedEvent,
  id: string,
): StageOutcome | undefined {
  const appended = tx.idem.get(id);
  if (appended) {
    const was = { ...appended, issued_by: appended.metadata.issued_by };
    const differs = difference(was, written(extra), false);
    if (differs.length === 0) return { event: appended, duplicate: true, staged: null };
    throw err('EDBX_ERR_EVENT_ID_CONFLICT', {
      event_id: id,
      reason: `by ${appended.event_type} on ${appended.aggregate_type}/${appended.aggregate_id}, appended at version ${appended.version} (position ${appended.position}), which differs from this event in ${differs.join(', ')}`,
      // Never just "use a new event id": if this is that event retried with a change, a new id
      // appends it a second time.
      advice:
        'nothing was staged: if this event retries that one, it is already appended; if it is another event, give it a new event id',
    });
  }
  const twin = stage.find((s) => s.request.event_id === id);
  if (!twin) return undefined;
  const differs = difference(written(twin), written(extra), true);
  if (differs.length === 0) return { staged: twin, duplicate: true };
  throw err('EDBX_ERR_DUPLICATE_EVENT_ID', {
    event_id: id,
    staged: `#${twin.seq}, ${twin.request.event_type} on ${twin.request.aggregate_type}/${twin.request.aggregate_id}`,
    differs: differs.join(', '),
  });
}

interface Written {
  readonly aggregate_type: string;
  readonly aggregate_id: string;
  readonly event_type: string;
  readonly payload: Payload;
  readonly issued_by: EventIssuer;
  readonly expected_version?: number | undefined;
}

/** A staged event as `difference` compares it (its payload was normalized when it was staged). */
const written = (s: StagedEvent): Written => ({
  ...s.request,
  payload: s.request.payload as Payload,
  issued_by: s.issued_by,
});

/** Longest list of payload fields a message names. */
const FIELDS_SHOWN = 5;

/**
 * How `now` differs from an event under the same id, as message phrases; none when it is the same
 * event. The same event has the same aggregate, type, payload and author (as `WriteTx.append` decides
 * a retry); a staged one also has the same expected version, which commit has yet to check.
 */
function difference(was: Written, now: Written, withExpected: boolean): string[] {
  const out: string[] = [];
  if (was.aggregate_type !== now.aggregate_type || was.aggregate_id !== now.aggregate_id)
    out.push(`aggregate (this one: ${now.aggregate_type}/${now.aggregate_id})`);
  if (was.event_type !== now.event_type) out.push(`event type (this one: ${now.event_type})`);
  if (!samePayload(was.payload, now.payload)) {
    const keys = new Set([...Object.keys(was.payload), ...Object.keys(now.payload)]);
    const fields = [...keys].filter(
      (k) =>
        !Object.hasOwn(was.payload, k) || !Object.hasOwn(now.payload, k) || was.payload[k] !== now.payload[k],
    );
    const named = fields.slice(0, FIELDS_SHOWN).map((k) => shown(k));
    const more = fields.length > FIELDS_SHOWN ? ` and ${fields.length - FIELDS_SHOWN} more` : '';
    out.push(`payload field${fields.length === 1 ? '' : 's'} ${named.join(', ')}${more}`);
  }
  if (withExpected && was.expected_version !== now.expected_version)
    out.push(
      `expected version (${was.expected_version ?? 'none'}; this one: ${now.expected_version ?? 'none'})`,
    );
  // A retry is the same person's: someone else must not be told their write is already done.
  const [by, me] = [was.issued_by, now.issued_by];
  if (by.group !== me.group || by.user !== me.user)
    out.push(`author (${by.group}/${by.user}; this one: ${me.group}/${me.user})`);
  return out;
}

/** Load what appending these staged events reads: their aggregates and event ids. */
const fetchFor = (tx: WriteTx, events: readonly StagedEvent[]): Promise<void> =>
  tx.fetch(
    events.map((s) => [s.request.aggregate_type, s.request.aggregate_id] as const),
    events.flatMap((s) => (s.request.event_id === undefined ? [] : [s.request.event_id])),
  );

/**
 * Append staged events (and `extra`, whose refusal is reported as is) to a transaction whose data
 * `fetchFor` loaded. A staged event that is refused is named, with how to get past it.
 */
function rehearse(tx: WriteTx, stage: readonly StagedEvent[], extra?: StagedEvent): AppendResult[] {
  const all = extra ? [...stage, extra] : stage;
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
  const results: AppendResult[] = [];
  for (const s of all) {
    try {
      results.push(tx.append(s.request, { issuedBy: s.issued_by }));
    } catch (e) {
      // A conflict an earlier staged event caused names it (qa-retry #4).
      throw refused(
        s,
        conflictWithin(e, results, 'stage', (j) => all[j]!.seq),
      );
    }
  }
  // A stage is committed whole, so one that mixes an event appended since (same event id) with new
  // ones is refused like such a transaction. (`extra` is new here: `alreadyThere` answered a retry.)
  try {
    refuseMixedRetry(results);
  } catch (e) {
    throw refused(all[results.findIndex((r) => r.duplicate)]!, e);
  }
  return results;
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
export async function commitStaged(store: EventStore): Promise<EventRecord[]> {
  return (await commitStagedDetailed(store)).records;
}

/**
 * commitStaged, saying whether the stage was a retry: every staged event was appended before (same
 * event ids, by a commit whose answer was lost, `apply` or HTTP), so nothing new is written, the
 * stage is cleared and `records` are the originals.
 */
export function commitStagedDetailed(
  store: EventStore,
): Promise<{ records: EventRecord[]; duplicate: boolean }> {
  return store.exclusive([], async (tx) => {
    const staged = await listStaged(store);
    // Nothing staged commits nothing, successfully: the spec's `commit` is a no-op that scripts call.
    if (staged.length === 0) return { records: [], duplicate: false };
    await fetchFor(tx, staged);
    const results = rehearse(tx, staged);
    for (const s of staged) tx.del(K.stagedKey(s.seq));
    // (refuseMixedRetry: all of them or none are duplicates)
    return { records: results.map((r) => r.record), duplicate: results[0]!.duplicate };
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
