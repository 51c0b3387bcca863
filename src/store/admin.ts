/**
 * Administrative writes: snapshots, archive and restore. Each runs as an exclusive writer job, so it
 * is atomic with its audit-log entry and never interleaves with appends. Staging is in `stage.ts`.
 */
import { err } from '../core/errors.js';
import type { EventRecord } from '../core/event.js';
import { aggregateId, aggregateType, comment as checkComment } from '../core/names.js';
import { type Space, prefixEnd } from '../storage/engine.js';
import { openMetaAt } from './bound.js';
import * as K from './keys.js';
import { AUDIT_ID, AUDIT_TYPE, type EventStore } from './store.js';
import { verifyAggregate } from './verify.js';
import type { SnapshotRecord, WriteContext } from './types.js';

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
