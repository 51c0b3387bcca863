/**
 * Values bound to their keys. The record codec seals a value, not the key it is stored under, so a
 * value copied, moved or swapped onto another key still opens. Every value that names what it is
 * about (an aggregate's meta, a snapshot) is therefore checked against its key when it is opened, as
 * events are (`openEventAt`): reads and verification never serve one aggregate's data as another's.
 */
import { err } from '../core/errors.js';
import { type RecordCodec, openJson } from './codec.js';
import { belongsAt } from './event-format.js';
import type { AggregateMeta, SnapshotRecord } from './types.js';

/** The meta stored at `type/id`, refused when it names another aggregate. */
export function openMetaAt(codec: RecordCodec, sealed: Buffer, type: string, id: string): AggregateMeta {
  const where = `aggregate ${type}/${id}`;
  const meta = openJson<AggregateMeta>(codec, sealed, where);
  if (meta.aggregate_type !== type || meta.aggregate_id !== id) {
    throw err('EDBX_ERR_INTEGRITY', {
      where,
      reason: `the meta stored there is that of ${meta.aggregate_type}/${meta.aggregate_id}`,
    });
  }
  return meta;
}

/** The snapshot stored at `type/id@version`, refused when it is another aggregate's or version's. */
export function openSnapshotAt(
  codec: RecordCodec,
  sealed: Buffer,
  type: string,
  id: string,
  version: number,
): SnapshotRecord {
  const where = `snapshot of ${type}/${id}@${version}`;
  const snap = openJson<SnapshotRecord>(codec, sealed, where);
  if (!belongsAt(snap, type, id, version)) {
    throw err('EDBX_ERR_INTEGRITY', {
      where,
      reason: `the snapshot stored there is of ${snap.aggregate_type}/${snap.aggregate_id}@${snap.version}`,
    });
  }
  return snap;
}
