/**
 * Reading an aggregate's events: the keyspace its meta names, one event by version, the events that
 * `event_id`s name (the writer's idempotency lookups), and a range read a chunk at a time in which a
 * missing event is an integrity error, never a shorter history served as complete.
 */
import { err } from '../core/errors.js';
import type { EventRecord } from '../core/event.js';
import type { Space } from '../storage/engine.js';
import { openEventAt } from './event-format.js';
import * as K from './keys.js';
import { Pace } from './pace.js';
import type { EventStore } from './store.js';
import type { LiveMeta } from './tx.js';

/** Events decoded per chunk of `scanEvents`: what a streaming reader holds at a time. */
const EVENT_CHUNK = 512;

/**
 * A range read of one aggregate's events: versions `fromVersion`..`toVersion`, then `skip` and `take`;
 * `signal` stops it within PACE_RECORDS events (a client that went away): a read given one lets the
 * event loop run that often, so that the close is seen and other requests are served meanwhile.
 */
export interface ReadEventsOptions {
  skip?: number;
  take?: number;
  reverse?: boolean;
  fromVersion?: number;
  toVersion?: number;
  signal?: AbortSignal | undefined;
}

/** The keyspace an aggregate's meta names, and the meta; refused when it is missing. */
export async function spaceOf(
  store: EventStore,
  type: string,
  id: string,
): Promise<{ space: Space; live: LiveMeta }> {
  const live = await store.meta(type, id);
  if (!live && (await store.storesEventsOf(type, id)))
    throw err('EDBX_ERR_INTEGRITY', {
      where: `aggregate ${type}/${id}`,
      reason: 'its meta is missing but its events are stored; run `eventdbx aggregate verify`',
    });
  if (!live) throw err('EDBX_ERR_AGGREGATE_NOT_FOUND', { aggregate_type: type, aggregate_id: id });
  return { space: live.meta.archived ? 'archive' : 'main', live };
}

/** One event by version, in the keyspace `space`; `live` is the aggregate's meta. */
export async function eventIn(
  store: EventStore,
  space: Space,
  live: LiveMeta,
  type: string,
  id: string,
  version: number,
): Promise<EventRecord> {
  const v = await store.engine.get(space, K.eventKey(type, id, version));
  if (!v) {
    throw err('EDBX_ERR_EVENT_NOT_FOUND', {
      aggregate_type: type,
      aggregate_id: id,
      version,
      current: live.meta.version,
    });
  }
  return openEventAt(store.env.codec, v, type, id, version);
}

/**
 * The events stored under these `event_id`s (null where none is), for the writer's idempotency
 * lookups, which need no retry: moves are writer jobs, so none is under way while the writer reads
 * (and waiting for one there would wait for the writer itself).
 */
export async function eventsByIds(
  store: EventStore,
  ids: readonly string[],
): Promise<(EventRecord | null)[]> {
  if (ids.length === 0) return [];
  const refs = await store.engine.getMany('main', ids.map(K.idempotencyKey));
  return Promise.all(
    refs.map(async (r) => {
      if (!r) return null;
      const ref = K.decodeRef(r);
      const { space, live } = await spaceOf(store, ref.type, ref.id);
      return eventIn(store, space, live, ref.type, ref.id, ref.version);
    }),
  );
}

/** EventStore.scanEvents: a range read of an aggregate's events, a chunk at a time. */
export async function* scanEventRange(
  store: EventStore,
  space: Space,
  type: string,
  id: string,
  opts: ReadEventsOptions,
): AsyncGenerator<EventRecord[]> {
  const reverse = opts.reverse ?? false;
  const bounded = opts.toVersion !== undefined;
  const first = Math.max(1, opts.fromVersion ?? 1);
  const last = opts.toVersion ?? Number.MAX_SAFE_INTEGER;
  // Versions are contiguous (a gap is refused), so skipping N events is starting N versions further:
  // the skipped events are not read at all (`replay --skip 299990` reads ten events, not 300,000).
  // Only a newest-first read without an upper bound does not know where that is.
  const seek = !reverse || bounded;
  const skipped = Math.min(opts.skip ?? 0, Math.max(0, last - first + 1));
  const from = seek && !reverse ? first + skipped : first;
  const to = seek && reverse ? last - skipped : last;
  if (to < from) return;
  const skip = seek ? 0 : (opts.skip ?? 0);
  const take = opts.take;
  const pace = opts.signal ? new Pace(opts.signal) : undefined;
  let chunk: EventRecord[] = [];
  let served = 0;
  let seen = 0;
  // The version the next record must have (unknown for the first of a reverse read without a bound).
  let next: number | undefined = reverse ? (bounded ? to : undefined) : from;
  const missing = (version: number) =>
    err('EDBX_ERR_INTEGRITY', {
      where: `event ${type}/${id}@${version}`,
      reason: 'the event is missing from the stored history; run `eventdbx aggregate verify`',
    });
  for await (const [k, v] of store.engine.range(space, {
    gte: K.eventKey(type, id, from),
    lte: K.eventKey(type, id, to),
    reverse,
    ...(take === undefined ? {} : { limit: skip + take }),
    signal: opts.signal,
  })) {
    const version = K.keyVersion(k);
    if (next !== undefined && version !== next) throw missing(next);
    next = reverse ? version - 1 : version + 1;
    if (seen++ < skip) continue;
    chunk.push(openEventAt(store.env.codec, v, type, id, version));
    if (pace?.due()) await pace.turn();
    if (chunk.length >= EVENT_CHUNK) {
      served += chunk.length;
      yield chunk;
      chunk = [];
    }
  }
  served += chunk.length;
  if (bounded) {
    const expected = Math.max(0, Math.min(take ?? Number.MAX_SAFE_INTEGER, to - from + 1 - skip));
    if (served < expected) throw missing(next ?? (reverse ? to : from));
  }
  if (chunk.length > 0) yield chunk;
}
