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
import type { LogScan } from './types.js';
import { aggKey } from './tx.js';

/** EventStore.readLog, without its retry when an archive or restore moved events meanwhile. */
export async function readLogOnce(
  store: EventStore,
  metas: Pick<Metas, 'loadLive'>,
  from: number,
  limit: number,
): Promise<EventRecord[]> {
  return openLogged(store, metas, await ledgerRefs(store, from, limit));
}

/**
 * EventStore.scanLog, without its retry: up to `limit` positions from `from` examined by their ledger
 * entry alone (it names type, id and version in clear), and only the events `keep` accepts read and
 * opened. `next` is the position after the last one examined.
 */
export async function scanLogOnce(
  store: EventStore,
  metas: Pick<Metas, 'loadLive'>,
  from: number,
  limit: number,
  keep: (ref: K.EventRef) => boolean,
): Promise<LogScan> {
  const first = Math.max(1, from);
  const entries = await ledgerRefs(store, first, limit);
  entries.forEach((e, i) => {
    if (e.position !== first + i)
      throw err('EDBX_ERR_INTEGRITY', {
        where: 'ledger',
        reason: `position ${first + i} is missing from the log (found ${e.position})`,
      });
  });
  const kept = entries.filter((e) => keep(e.ref));
  const records = await openLogged(store, metas, kept);
  records.forEach((r, i) => {
    if (r.position !== kept[i]!.position)
      throw err('EDBX_ERR_INTEGRITY', {
        where: `ledger position ${kept[i]!.position}`,
        reason: `the event there says it is at position ${r.position}`,
      });
  });
  return { records, next: first + entries.length };
}

/** A ledger entry read for the log: its position and the event it names. */
interface LoggedRef {
  readonly position: number;
  readonly ref: K.EventRef;
}

/** The ledger entries (`P`) of up to `limit` positions from `from`: where each event is. */
async function ledgerRefs(store: EventStore, from: number, limit: number): Promise<LoggedRef[]> {
  const out: LoggedRef[] = [];
  for await (const [k, v] of store.engine.range('main', {
    gte: K.positionKey(Math.max(1, from)),
    lt: prefixEnd(K.positionPrefix()),
    limit,
  })) {
    const position = K.readU64(k, 1);
    const entry = K.decodeLedgerEntry(position, v);
    if (!entry) {
      throw err('EDBX_ERR_INTEGRITY', { where: `ledger position ${position}`, reason: 'malformed entry' });
    }
    out.push({ position, ref: entry.ref });
  }
  return out;
}

/** The events the entries name, opened, in their order. */
async function openLogged(
  store: EventStore,
  metas: Pick<Metas, 'loadLive'>,
  entries: readonly LoggedRef[],
): Promise<EventRecord[]> {
  if (entries.length === 0) return [];
  const refs = entries.map((e) => e.ref);
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
          where: `ledger position ${entries[i]!.position}`,
          reason: `event ${r.type}/${r.id}@${r.version} is missing`,
        });
      out[i] = openEventAt(store.env.codec, v, r.type, r.id, r.version);
    });
  }
  return out as EventRecord[];
}
