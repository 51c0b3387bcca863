/**
 * Administrative writes: snapshots, archive/restore, staging and commit. Each runs as an exclusive
 * writer job, so it is atomic with its audit-log entry and never interleaves with appends.
 */
import { err, toEventDbxError } from '../core/errors.js';
import { type EventRecord, eventIssuer, normalizePayload } from '../core/event.js';
import {
  aggregateId,
  aggregateType,
  comment as checkComment,
  eventId,
  eventType,
  expectedVersion,
} from '../core/names.js';
import { type Space, prefixEnd } from '../storage/engine.js';
import { openJson, sealJson } from './codec.js';
import { openMetaAt } from './bound.js';
import * as K from './keys.js';
import { AUDIT_ID, AUDIT_TYPE, type EventStore } from './store.js';
import { type AppendResult, type WriteTx, conflictWithin, refuseMixedRetry } from './tx.js';
import { verifyAggregate } from './verify.js';
import type { AppendRequest, SnapshotRecord, StagedEvent, WriteContext } from './types.js';

const AUDIT: readonly [string, string] = [AUDIT_TYPE, AUDIT_ID];

/** Store the state at the current version as a snapshot. */
export async function takeSnapshot(
  store: EventStore,
  type: string,
  id: string,
  ctx: WriteContext,
  comment?: string,
): Promise<SnapshotRecord> {
  aggregateType(type);
  aggregateId(id);
  checkComment(comment);
  return store.exclusive([[type, id], AUDIT], async (tx) => {
    const live = tx.live(type, id);
    if (!live) throw err('EDBX_ERR_AGGREGATE_NOT_FOUND', { aggregate_type: type, aggregate_id: id });
    if (live.meta.archived)
      throw err('EDBX_ERR_AGGREGATE_ARCHIVED', { aggregate_type: type, aggregate_id: id });
    const snap = tx.putSnapshot(live.meta, ctx.issuedBy, comment);
    tx.setLive(type, id, { ...live, meta: { ...live.meta, last_snapshot_version: live.meta.version } });
    // A snapshot asked for by someone is an administrative action, audited with its comment like
    // archive and restore (automatic snapshots from a schema threshold are not).
    store.audit(tx, ctx, 'aggregate-snapshot-taken', {
      aggregate: `${type}/${id}`,
      version: String(snap.version),
      merkle_root: snap.merkle_root,
      comment: comment ?? '',
    });
    return snap;
  });
}

/** Every key of an aggregate's events, Merkle nodes and snapshots in a keyspace. */
async function aggregateEntries(
  store: EventStore,
  space: Space,
  type: string,
  id: string,
): Promise<Array<[Buffer, Buffer]>> {
  const out: Array<[Buffer, Buffer]> = [];
  for (const prefix of [K.eventPrefix(type, id), K.nodePrefix(type, id), K.snapshotPrefix(type, id)]) {
    for await (const entry of store.engine.range(space, { gte: prefix, lt: prefixEnd(prefix) }))
      out.push(entry);
  }
  return out;
}

/**
 * Move an aggregate's events, Merkle nodes, snapshots and state to the archive keyspace (long-term
 * storage; nothing is deleted). Appends are refused until it is restored. Recorded in the audit log.
 */
export function archiveAggregate(
  store: EventStore,
  type: string,
  id: string,
  ctx: WriteContext,
  comment?: string,
): Promise<EventRecord> {
  return moveAggregate(store, type, id, ctx, comment, 'archive');
}

/** Move an archived aggregate back to live storage. Recorded in the audit log. */
export function restoreAggregate(
  store: EventStore,
  type: string,
  id: string,
  ctx: WriteContext,
  comment?: string,
): Promise<EventRecord> {
  return moveAggregate(store, type, id, ctx, comment, 'main');
}

async function moveAggregate(
  store: EventStore,
  type: string,
  id: string,
  ctx: WriteContext,
  comment: string | undefined,
  to: Space,
): Promise<EventRecord> {
  aggregateType(type);
  aggregateId(id);
  checkComment(comment);
  const from: Space = to === 'archive' ? 'main' : 'archive';
  return store.exclusive([[type, id], AUDIT], async (tx) => {
    const live = tx.live(type, id);
    if (!live) throw err('EDBX_ERR_AGGREGATE_NOT_FOUND', { aggregate_type: type, aggregate_id: id });
    const params = { aggregate_type: type, aggregate_id: id };
    if (to === 'archive' && live.meta.archived) throw err('EDBX_ERR_AGGREGATE_ALREADY_ARCHIVED', params);
    if (to === 'main' && !live.meta.archived) throw err('EDBX_ERR_AGGREGATE_NOT_ARCHIVED', params);
    // The audit entry attests to the version and root moved: only an aggregate that verifies is moved,
    // so tampering is not carried over into the other keyspace under an entry that looks clean.
    const report = await verifyAggregate(store, type, id);
    if (!report.ok)
      throw err('EDBX_ERR_INTEGRITY', {
        where: `aggregate ${type}/${id}`,
        reason: `version ${report.first_bad_version ?? '?'}: ${report.reason ?? 'does not verify'}; nothing was moved`,
      });
    for (const [k, v] of await aggregateEntries(store, from, type, id)) {
      tx.put(k, v, to);
      tx.del(k, from);
    }
    let meta = live.meta;
    if (to === 'main') {
      // The main keyspace holds only a stub of an archived aggregate; the full meta is in the archive.
      const full = await store.engine.get('archive', K.metaKey(type, id));
      if (!full)
        throw err('EDBX_ERR_INTEGRITY', {
          where: `aggregate ${type}/${id}`,
          reason: 'archived state is missing',
        });
      meta = openMetaAt(store.env.codec, full, type, id);
      tx.del(K.metaKey(type, id), 'archive');
    }
    tx.setLive(type, id, { ...live, meta: { ...meta, archived: to === 'archive' } });
    return store.audit(tx, ctx, to === 'archive' ? 'aggregate-archived' : 'aggregate-restored', {
      aggregate: `${type}/${id}`,
      version: String(meta.version),
      merkle_root: meta.merkle_root,
      comment: comment ?? '',
    });
  });
}

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
  const results: AppendResult[] = [];
  for (const s of all) {
    try {
      results.push(tx.append(s.request, { issuedBy: s.issued_by }));
    } catch (e) {
      throw refused(
        s,
        conflictWithin(e, results, 'stage', (j) => all[j]!.seq),
      );
    }
  }
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
