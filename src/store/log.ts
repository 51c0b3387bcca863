/**
 * The store-wide log: committed events in ledger position order across aggregates, each read in the
 * keyspace its aggregate's meta names (archived aggregates keep theirs in the archive keyspace).
 */
import { err } from '../core/errors.js';
import type { EventRecord } from '../core/event.js';
import { type Space, prefixEnd } from '../storage/engine.js';
import { openEventAt } from './event-format.js';
import * as K from './keys.js';
import type { Metas } from './metas.js';
import type { EventStore } from './store.js';
import { aggKey } from './tx.js';

/** EventStore.readLog, without its retry when an archive or restore moved events meanwhile. */
export async function readLogOnce(
  store: EventStore,
  metas: Pick<Metas, 'loadLive'>,
  from: number,
  limit: number,
): Promise<EventRecord[]> {
  const refs: K.EventRef[] = [];
  const first = Math.max(1, from);
  for await (const [k, v] of store.engine.range('main', {
    gte: K.positionKey(first),
    lt: prefixEnd(K.positionPrefix()),
    limit,
  })) {
    const position = K.readU64(k, 1);
    const entry = K.decodeLedgerEntry(position, v);
    if (!entry) {
      throw err('EDBX_ERR_INTEGRITY', { where: `ledger position ${position}`, reason: 'malformed entry' });
    }
    refs.push(entry.ref);
  }
  if (refs.length === 0) return [];
  // One batched read per keyspace: archived aggregates keep their events in the archive keyspace.
  const distinct = [...new Map(refs.map((r) => [aggKey(r.type, r.id), [r.type, r.id] as const])).values()];
  const lives = await metas.loadLive(distinct);
  const archived = new Set(distinct.filter((_, i) => lives[i]?.meta.archived).map(([t, i]) => aggKey(t, i)));
  const spaceOf = (r: K.EventRef): Space => (archived.has(aggKey(r.type, r.id)) ? 'archive' : 'main');
  const out: Array<EventRecord | undefined> = new Array(refs.length);
  for (const space of ['main', 'archive'] as const) {
    const idx = refs.flatMap((r, i) => (spaceOf(r) === space ? [i] : []));
    if (idx.length === 0) continue;
    const values = await store.engine.getMany(
      space,
      idx.map((i) => K.eventKey(refs[i]!.type, refs[i]!.id, refs[i]!.version)),
    );
    idx.forEach((i, j) => {
      const r = refs[i]!;
      const v = values[j];
      if (!v)
        throw err('EDBX_ERR_INTEGRITY', {
          where: `ledger position ${from + i}`,
          reason: `event ${r.type}/${r.id}@${r.version} is missing`,
        });
      out[i] = openEventAt(store.env.codec, v, r.type, r.id, r.version);
    });
  }
  return out as EventRecord[];
}
