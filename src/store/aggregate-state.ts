/**
 * An aggregate's state now or at an earlier version: the meta's state when current, else rebuilt
 * from the nearest snapshot at or below the version by folding the events after it; and the list of
 * an aggregate's snapshots, which must end with the one its meta records.
 */
import { err } from '../core/errors.js';
import { type EventRecord, type Payload, foldState } from '../core/event.js';
import { version as checkVersion } from '../core/names.js';
import { type Space, prefixEnd } from '../storage/engine.js';
import { openSnapshotAt } from './bound.js';
import * as K from './keys.js';
import type { EventStore } from './store.js';
import type { LiveMeta } from './tx.js';
import type { AggregateView, SnapshotRecord } from './types.js';

/** What EventStore.aggregate reads: the state at `version` (default: now), with its events or not. */
export type AggregateOptions = {
  version?: number;
  includeEvents?: boolean;
  signal?: AbortSignal | undefined;
};

/** The aggregate's view at `opts.version`, read in the keyspace `space`; `live` is its meta. */
export async function aggregateIn(
  store: EventStore,
  space: Space,
  live: LiveMeta,
  type: string,
  id: string,
  opts: AggregateOptions,
): Promise<AggregateView> {
  const current = live.meta;
  const at = opts.version === undefined ? current.version : checkVersion(opts.version);
  if (at > current.version) {
    // A well-formed version the aggregate has not reached: not found (404), like GET …/events/{version}.
    throw err('EDBX_ERR_EVENT_NOT_FOUND', {
      aggregate_type: type,
      aggregate_id: id,
      version: at,
      current: current.version,
    });
  }
  let state: Payload;
  let merkleRoot = current.merkle_root;
  let updatedAt = current.updated_at;
  if (at === current.version && !current.archived) {
    state = current.state;
  } else {
    const snap = await nearestSnapshot(store, space, type, id, at);
    // Folded while the events are read, a chunk at a time: a long history since the snapshot is
    // never held whole (concurrent reads of old versions would each hold theirs).
    state = snap?.state ?? {};
    let last: EventRecord | undefined;
    // From the event at the snapshot's version: the snapshot must carry that event's root.
    for await (const chunk of store.scanEvents(space, type, id, {
      fromVersion: snap?.version ?? 1,
      toVersion: at,
      signal: opts.signal,
    })) {
      for (const e of chunk) {
        if (last === undefined && snap) {
          if (e.merkle_root !== snap.merkle_root) {
            throw err('EDBX_ERR_INTEGRITY', {
              where: `snapshot of ${type}/${id}@${snap.version}`,
              reason: 'its merkle_root is not that of the event at its version',
            });
          }
        } else state = foldState(state, e.payload);
        last = e;
      }
      // A long fold lets timers and other requests run (the scan's chunks resolve as microtasks).
      await new Promise((r) => setImmediate(r));
    }
    merkleRoot = last!.merkle_root;
    // The time of the event at `at` (not when a snapshot of it was taken).
    updatedAt = last!.metadata.created_at;
  }
  const view: AggregateView = {
    aggregate_type: type,
    aggregate_id: id,
    version: at,
    state,
    merkle_root: merkleRoot,
    archived: current.archived,
    created_at: current.created_at,
    updated_at: updatedAt,
  };
  if (!opts.includeEvents) return view;
  const events = await store.readEvents(space, type, id, { toVersion: at, signal: opts.signal });
  return { ...view, events };
}

async function nearestSnapshot(
  store: EventStore,
  space: Space,
  type: string,
  id: string,
  atOrBelow: number,
): Promise<SnapshotRecord | undefined> {
  for await (const [k, v] of store.engine.range(space, {
    gte: K.snapshotKey(type, id, 1),
    lte: K.snapshotKey(type, id, atOrBelow),
    reverse: true,
    limit: 1,
  })) {
    return openSnapshotAt(store.env.codec, v, type, id, K.keyVersion(k));
  }
  return undefined;
}

/** The aggregate's snapshots, oldest first, read in the keyspace `space`; `live` is its meta. */
export async function snapshotsIn(
  store: EventStore,
  space: Space,
  live: LiveMeta,
  type: string,
  id: string,
): Promise<SnapshotRecord[]> {
  const prefix = K.snapshotPrefix(type, id);
  const out: SnapshotRecord[] = [];
  for await (const [k, v] of store.engine.range(space, { gte: prefix, lt: prefixEnd(prefix) })) {
    out.push(openSnapshotAt(store.env.codec, v, type, id, K.keyVersion(k)));
  }
  // The meta records the last one taken: a list that does not end with it was read in the wrong
  // keyspace (a move raced the read) or lost snapshots, and is not served as the aggregate's.
  if (live.meta.last_snapshot_version > 0 && out.at(-1)?.version !== live.meta.last_snapshot_version)
    throw err('EDBX_ERR_INTEGRITY', {
      where: `snapshot of ${type}/${id}@${live.meta.last_snapshot_version}`,
      reason: 'the snapshot is missing; run `eventdbx aggregate verify`',
    });
  return out;
}
