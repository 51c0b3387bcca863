/**
 * Verification recomputes everything from the stored events and never trusts a stored root:
 * each event's leaf hash from its canonical form, each root after it, every stored Merkle node, the
 * aggregate's meta and state, and the ledger entry pointing at it. The ledger check recomputes the
 * store-wide tree from the ledger entries and matches it against the stored ledger and event counts.
 */
import { type Frontier, appendLeaf, emptyFrontier, frontierRoot } from '../core/merkle/index.js';
import type { EventRecord } from '../core/event.js';
import type { PinnedRead, Space } from '../storage/engine.js';
import { prefixEnd } from '../storage/engine.js';
import { type EventDbxError, err, isEventDbxError, throwIfAborted } from '../core/errors.js';
import { aggregateId, aggregateType } from '../core/names.js';
import { openMetaAt } from './bound.js';
import * as K from './keys.js';
import type { EventStore } from './store.js';
import { aggKey } from './tx.js';
import type { AggregateMeta, LedgerReport, VerifyReport } from './types.js';
import {
  type Segment,
  type SegmentSource,
  conclude,
  notFound,
  sameNodes,
  segmentOutcome,
  verifyLatest,
  wholeOf,
} from './verify-segment.js';
import type { Outcome } from './verify-wire.js';

/** With a signal, a verification on this thread stops at its next chunk once the caller gave up. */
const sourceOf = (store: EventStore, signal?: AbortSignal): SegmentSource => ({
  engine: store.engine,
  codec: store.env.codec,
  ...(signal ? { stopping: () => signal.aborted } : {}),
});

/**
 * Verify one aggregate. Never throws for integrity problems: it reports the first bad version.
 * `signal` stops it between chunks (EDBX_ERR_CANCELLED).
 */
export async function verifyAggregate(
  store: EventStore,
  type: string,
  id: string,
  signal?: AbortSignal,
): Promise<VerifyReport> {
  let live;
  try {
    live = await store.storedMeta(type, id);
  } catch (e) {
    // A meta that cannot be opened here (or is another aggregate's): reported, not thrown.
    if (isEventDbxError(e, 'EDBX_ERR_INTEGRITY')) return { ...notFound(type, id), reason: e.message };
    throw e;
  }
  if (!live && (await store.storesEventsOf(type, id)))
    return { ...notFound(type, id), reason: 'its meta is missing but its events are stored' };
  if (!live) return notFound(type, id);
  return verifyMeta(store, live.meta, signal);
}

/** Verify the aggregate of a meta already opened (and checked against its key). */
async function verifyMeta(
  store: EventStore,
  meta: AggregateMeta,
  signal?: AbortSignal,
): Promise<VerifyReport> {
  return verifyLatest(
    sourceOf(store),
    meta,
    async (m) => {
      const plan = await planSegments(store, m);
      const outcomes = await runSegments(store, plan, signal);
      // A segment stopped because the caller gave up is not an integrity finding.
      throwIfAborted(signal);
      return conclude(sourceOf(store), m, plan.segments, outcomes);
    },
    () => store.watchMoves(),
  );
}

/**
 * `verifyAggregate` for a caller that names one aggregate (the CLI, the API): a bad name or an
 * aggregate that does not exist is a coded error; anything found wrong with one that does is the report.
 */
export async function verifyNamed(
  store: EventStore,
  type: string,
  id: string,
  signal?: AbortSignal,
): Promise<VerifyReport> {
  aggregateType(type);
  aggregateId(id);
  const report = await verifyAggregate(store, type, id, signal);
  if (!report.ok && report.reason === notFound(type, id).reason)
    throw err('EDBX_ERR_AGGREGATE_NOT_FOUND', { aggregate_type: type, aggregate_id: id });
  return report;
}

type Workers = NonNullable<ReturnType<EventStore['verifyWorkers']>>;

interface Plan {
  readonly segments: readonly Segment[];
  /** The worker threads the segments go to (a long aggregate); undefined: verified on this thread. */
  readonly workers: Workers | undefined;
}

/**
 * Cut an aggregate into segments: one when it is short or there are no worker threads; otherwise up to
 * one per worker, each at least `segmentEvents` long, each after the first starting from the frontier
 * its stored Merkle nodes give. When those nodes are damaged, one segment (which then reports them).
 */
async function planSegments(store: EventStore, meta: AggregateMeta): Promise<Plan> {
  const whole = [wholeOf(meta)];
  const { type, id, space } = whole[0] as Segment;
  const workers = store.verifyWorkers();
  if (!workers || meta.version < workers.segmentEvents) return { segments: whole, workers: undefined };
  const count = Math.min(workers.pool.size, Math.floor(meta.version / workers.segmentEvents));
  const cuts = Array.from({ length: count - 1 }, (_, i) => Math.round(((i + 1) * meta.version) / count));
  const frontiers = await Promise.all(cuts.map((size) => storedFrontier(store, space, type, id, size)));
  if (frontiers.some((f) => f === undefined)) return { segments: whole, workers };
  const starts = [emptyFrontier, ...(frontiers as Frontier[])];
  const segments = starts.map((frontier, i) => ({ type, id, space, frontier, to: cuts[i] ?? meta.version }));
  return { segments, workers };
}

async function runSegments(
  store: EventStore,
  { segments, workers }: Plan,
  signal?: AbortSignal,
): Promise<Outcome[]> {
  if (workers) return Promise.all(segments.map((s) => workers.pool.run(s, workers.codec, signal)));
  const source = sourceOf(store, signal);
  const outcomes: Outcome[] = [];
  for (const s of segments) outcomes.push(await segmentOutcome(source, s));
  return outcomes;
}

/**
 * The tree of the first `size` events as its stored nodes give it: the perfect subtree for each set
 * bit of `size`, largest first, is the node at that level in the N entry of the subtree's last leaf.
 * Undefined when an entry is missing or short.
 */
async function storedFrontier(
  store: EventStore,
  space: Space,
  type: string,
  id: string,
  size: number,
): Promise<Frontier | undefined> {
  const wanted: Array<{ level: number; version: number }> = [];
  let covered = 0;
  for (let level = Math.floor(Math.log2(size)); level >= 0; level--) {
    if (Math.floor(size / 2 ** level) % 2 === 1) {
      covered += 2 ** level;
      wanted.push({ level, version: covered });
    }
  }
  const entries = await store.engine.getMany(
    space,
    wanted.map((w) => K.nodeKey(type, id, w.version)),
  );
  const nodes: Buffer[] = [];
  for (const [i, { level }] of wanted.entries()) {
    const entry = entries[i];
    if (!entry || entry.length < 32 * (level + 1)) return undefined;
    nodes.push(Buffer.from(entry.subarray(32 * level, 32 * level + 32)));
  }
  return { size, nodes };
}

/**
 * Verify the store-wide ledger: entries are gap-free from 1, the recomputed tree matches every stored
 * ledger node and the stored head, and (with `eventCount`) the entry count equals the events stored.
 * The head and the entries are read as of one point between two commits (`at`, or pinned here):
 * appends committed meanwhile are for the next verification.
 */
export async function verifyLedger(
  store: EventStore,
  eventCount?: number,
  signal?: AbortSignal,
  at?: LedgerPin,
): Promise<LedgerReport> {
  const { head, entries } = at ?? (await store.atRest(() => pinLedger(store)));
  let frontier: Frontier = emptyFrontier;
  let expected = 1;
  let unread: EventDbxError | undefined;
  const fail = (position: number, reason: string): LedgerReport => ({
    ok: false,
    size: head.size,
    root: head.root,
    first_bad_position: position,
    reason,
  });
  try {
    for await (const chunk of readable(entries.chunks(signal), (e) => (unread = e))) {
      for (const [key, value] of chunk) {
        const position = K.readU64(key, 1);
        if (position !== expected) return fail(expected, `ledger entry ${expected} is missing`);
        const entry = K.decodeLedgerEntry(position, value);
        if (!entry) return fail(position, 'malformed ledger entry');
        const grown = appendLeaf(frontier, Buffer.from(entry.leaf));
        frontier = grown.frontier;
        if (!sameNodes(entry.nodes, grown.completed)) {
          return fail(position, 'stored ledger nodes do not match the entries');
        }
        expected++;
      }
    }
  } finally {
    await entries.close().catch((e: unknown) => {
      if (!unreadable(e)) throw e;
    });
  }
  if (unread) {
    store.engine.noteDamage(unread);
    return fail(
      expected,
      `the ledger entries from position ${expected} on could not be read: ${unread.message}`,
    );
  }
  const size = expected - 1;
  const root = frontierRoot(frontier).toString('hex');
  if (size !== head.size || root !== head.root) {
    return fail(
      Math.min(size, head.size) + 1,
      `ledger head (${head.size}) does not match its ${size} entries`,
    );
  }
  const loss = store.acknowledgedLoss;
  if (loss) return fail(size + 1, loss.message);
  if (eventCount !== undefined && eventCount !== size) {
    const unmatched = await firstUnmatched(store, size).catch((e: unknown) => {
      if (!unreadable(e)) throw e;
      store.engine.noteDamage(e);
      return undefined;
    });
    if (unmatched) return fail(unmatched.position, unmatched.reason);
    return fail(size, `aggregates hold ${eventCount} events but the ledger has ${size}`);
  }
  return { ok: true, size, root };
}

/** The ledger head and its entries, pinned at one point between two commits. */
interface LedgerPin {
  readonly head: { size: number; root: string };
  readonly entries: PinnedRead;
}

/** Call at rest (`store.atRest`): the head in memory and the entries on disk then agree. */
const pinLedger = (store: EventStore): LedgerPin => ({
  head: store.ledgerHead(),
  entries: store.engine.pin('main', { gte: K.positionKey(1), lt: prefixEnd(K.positionPrefix()) }),
});

/**
 * The first ledger entry that no stored event answers: what a count mismatch means. Its aggregate has no
 * meta (removed, or its meta), or the event it names is not stored (an aggregate's newest events removed
 * with an older meta put back) or is another event, at another position (written after such a removal
 * under the version removed). Only run when the counts disagree; reads each entry's event.
 */
async function firstUnmatched(
  store: EventStore,
  size: number,
): Promise<{ position: number; reason: string } | undefined> {
  /** Aggregate (`aggKey`) → whether it has a meta, for each aggregate met so far. */
  const hasMeta = new Map<string, boolean>();
  let batch: Array<{ position: number; ref: K.EventRef }> = [];
  const check = async () => {
    const unknown = new Map<string, K.EventRef>();
    for (const { ref } of batch) {
      const k = aggKey(ref.type, ref.id);
      if (!hasMeta.has(k)) unknown.set(k, ref);
    }
    const metas = await store.engine.getMany(
      'main',
      [...unknown.values()].map((r) => K.metaKey(r.type, r.id)),
    );
    [...unknown.keys()].forEach((k, i) => hasMeta.set(k, metas[i] !== undefined));
    const found = await firstOf(
      batch.map(async ({ position, ref }) => {
        const named = `ledger entry ${position} points at ${ref.type}/${ref.id}@${ref.version}`;
        if (!hasMeta.get(aggKey(ref.type, ref.id)))
          return { position, reason: `${named}, an aggregate with no meta (removed?)` };
        const at = (await storedEvent(store, ref))?.position;
        if (at === undefined)
          return {
            position,
            reason: `${named}, which the store does not hold (removed, with its aggregate's meta put back?)`,
          };
        if (at !== position)
          return {
            position,
            reason: `${named}, but that event is at position ${at}: the event the entry was written for was replaced`,
          };
        return undefined;
      }),
    );
    batch = [];
    return found;
  };
  // Up to the size verified: entries appended since belong to aggregates created since, maybe.
  for await (const [key, value] of store.engine.range('main', {
    gte: K.positionKey(1),
    lt: K.positionKey(size + 1),
  })) {
    const position = K.readU64(key, 1);
    const entry = K.decodeLedgerEntry(position, value);
    if (entry) batch.push({ position, ref: entry.ref });
    if (batch.length >= 256) {
      const found = await check();
      if (found) return found;
    }
  }
  return batch.length > 0 ? check() : undefined;
}

/** The event `ref` names, from either keyspace (an archive moves events), if it is stored and opens. */
async function storedEvent(store: EventStore, ref: K.EventRef): Promise<EventRecord | undefined> {
  for (const space of ['main', 'archive'] as const) {
    const range = { fromVersion: ref.version, toVersion: ref.version };
    const [event] = await store.readEvents(space, ref.type, ref.id, range).catch(() => []);
    if (event) return event;
  }
  return undefined;
}

/** The first (in order) defined answer of `answers`. */
async function firstOf<T>(answers: ReadonlyArray<Promise<T | undefined>>): Promise<T | undefined> {
  return (await Promise.all(answers)).find((a) => a !== undefined);
}

export interface VerifyAllReport {
  readonly ok: boolean;
  /** Aggregates verified, the system ones (the audit log) included. */
  readonly aggregates: number;
  /** Of those, system aggregates ('$…', not listed by `aggregate list`). */
  readonly system: number;
  readonly events: number;
  readonly failures: VerifyReport[];
  readonly ledger: LedgerReport;
  /**
   * What could not even be listed (damaged files: RocksDB reports corruption), each a line naming the
   * key range and the error: the aggregates in it were not verified. Absent when everything was read.
   */
  readonly unreadable?: string[];
}

/**
 * Verify every aggregate (system ones included) and then the ledger. With worker threads, short
 * aggregates go to them in groups of about `segmentEvents` events (a few groups in flight), and long
 * ones are cut into segments as `verifyAggregate` does; failures are listed in aggregate order.
 */
export async function verifyAll(
  store: EventStore,
  onProgress?: (done: number, total: number) => void,
  signal?: AbortSignal,
): Promise<VerifyAllReport> {
  // Every meta and the ledger as of one point between two commits: the events the metas record are
  // exactly the ledger's entries then, however many appends land while the verification runs.
  const prefix = K.metaPrefix();
  const pinned = await store.atRest(() => ({
    metas: store.engine.pin('main', { gte: prefix, lt: prefixEnd(prefix) }),
    ledger: pinLedger(store),
  }));
  try {
    return await verifyPinned(store, pinned, onProgress, signal);
  } finally {
    await Promise.all([pinned.metas.close(), pinned.ledger.entries.close()]);
  }
}

async function verifyPinned(
  store: EventStore,
  pinned: { metas: PinnedRead; ledger: LedgerPin },
  onProgress?: (done: number, total: number) => void,
  signal?: AbortSignal,
): Promise<VerifyAllReport> {
  // For the progress bar only: a count that cannot be read (damaged files) is found out below.
  const total = await store
    .countAggregates({ includeSystem: true, signal })
    .catch((e: unknown) => (unreadable(e) ? 0 : Promise.reject(e)));
  // Said at once: the first group of aggregates may take a while on a large store.
  if (total > 0) onProgress?.(0, total);
  const failures: VerifyReport[] = [];
  const unlisted: string[] = [];
  let done = 0;
  let aggregates = 0;
  let system = 0;
  // What the pinned metas record (each aggregate is verified as far as its meta then said, or further).
  let events = 0;
  const finished = (found: readonly VerifyReport[]) => {
    for (const r of found) if (!r.ok) failures.push(r);
    done += found.length;
    onProgress?.(done, Math.max(total, done));
  };
  const workers = store.verifyWorkers();
  const inflight = new Set<Promise<void>>();
  let group: Array<{ type: string; id: string }> = [];
  let groupEvents = 0;
  const dispatch = async ({ pool, codec }: Workers) => {
    const metas = group;
    group = [];
    groupEvents = 0;
    // The workers read the metas too. A worker cannot see archives and restores: a failure while one
    // ran is verified again here, where they are seen (verifyLatest).
    const moves = store.watchMoves();
    const task = pool
      .verifyAggregates(
        metas.map((a) => [a.type, a.id] as const),
        codec,
        signal,
      )
      // One aggregate of the group that cannot be read fails the group: each is verified here then,
      // so the report names the unreadable ones and the others are verified all the same.
      .catch(async (e: unknown) => {
        if (!unreadable(e)) throw e;
        return Promise.all(
          metas.map((a) => checked(store, a.type, a.id, verifyAggregate(store, a.type, a.id, signal))),
        );
      })
      .then(async (found) => {
        if (!moves.raced()) return finished(found);
        await moves.settled();
        const again = async (r: VerifyReport) =>
          r.ok ? r : verifyAggregate(store, r.aggregate_type, r.aggregate_id, signal);
        finished(await Promise.all(found.map(again)));
      });
    inflight.add(task);
    void task.then(
      () => inflight.delete(task),
      () => undefined,
    );
    // A few groups in flight keep every worker busy while bounding what is held in memory.
    if (inflight.size >= 2 * pool.size) await Promise.race(inflight);
  };
  // Every meta key, whatever its value: one that does not open, or names another aggregate, is a
  // failure of the aggregate its key names. The pinned read holds no more than a chunk at a time.
  // Metas that cannot be read (a damaged table) end the listing: the range is reported, and what was
  // listed is verified all the same.
  let last: { type: string; id: string } | undefined;
  let unlistedError: EventDbxError | undefined;
  for await (const chunk of readable(pinned.metas.chunks(signal), (e) => (unlistedError = e))) {
    for (const [k, v] of chunk) {
      const { type, id } = K.decodeMetaKey(k);
      last = { type, id };
      aggregates++;
      if (type.startsWith('$')) system++;
      let meta;
      try {
        meta = openMetaAt(store.env.codec, v, type, id);
      } catch (e) {
        finished([{ ...notFound(type, id), reason: isEventDbxError(e) ? e.message : 'undecodable meta' }]);
        continue;
      }
      events += meta.version;
      if (!workers || meta.version >= workers.segmentEvents) {
        finished([await checked(store, type, id, verifyMeta(store, meta, signal))]);
        continue;
      }
      group.push({ type, id });
      groupEvents += meta.version;
      if (groupEvents >= workers.segmentEvents) await dispatch(workers);
    }
  }
  if (workers && group.length > 0) await dispatch(workers);
  await Promise.all(inflight);
  if (unlistedError) {
    store.engine.noteDamage(unlistedError);
    const which = last ? `after ${last.type}/${last.id} (in key order)` : 'from the first on';
    unlisted.push(
      `the aggregates ${which} could not be listed, so were not verified: ${unlistedError.message}`,
    );
  }
  // Groups finish out of order: list failures in aggregate (key) order.
  const key = (r: VerifyReport) => K.metaKey(r.aggregate_type, r.aggregate_id);
  failures.sort((x, y) => Buffer.compare(key(x), key(y)));
  // Events of aggregates not listed are not counted: the count is not compared then.
  const ledger = await verifyLedger(store, unlistedError ? undefined : events, signal, pinned.ledger);
  return {
    ok: failures.length === 0 && ledger.ok && unlisted.length === 0,
    aggregates,
    system,
    events,
    failures,
    ledger,
    ...(unlisted.length > 0 ? { unreadable: unlisted } : {}),
  };
}

/**
 * A read that failed on the store's files (damaged: EDBX_ERR_STORE_DAMAGED; or an I/O error): what it
 * concerned is reported as not verified, and verification goes on with the rest.
 */
const unreadable = (e: unknown): e is EventDbxError =>
  isEventDbxError(e, 'EDBX_ERR_STORE_DAMAGED') || isEventDbxError(e, 'EDBX_ERR_STORE_IO');

/** The report of one aggregate's verification, or, when its data cannot be read, a failure saying so. */
async function checked(
  store: EventStore,
  type: string,
  id: string,
  verifying: Promise<VerifyReport>,
): Promise<VerifyReport> {
  try {
    return await verifying;
  } catch (e) {
    if (!unreadable(e)) throw e;
    // A worker thread's read comes back here: the server learns of the damage all the same.
    store.engine.noteDamage(e);
    const reason = `could not be read: ${e.message}`;
    return { aggregate_type: type, aggregate_id: id, ok: false, version: 0, merkle_root: '', reason };
  }
}

/** The chunks of a scan until one cannot be read (told to `failed`); other errors are thrown. */
async function* readable<T>(chunks: AsyncIterable<T>, failed: (e: EventDbxError) => void): AsyncGenerator<T> {
  try {
    for await (const chunk of chunks) yield chunk;
  } catch (e) {
    if (!unreadable(e)) throw e;
    failed(e);
  }
}
