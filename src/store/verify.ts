/**
 * Verification recomputes everything from the stored events and never trusts a stored root:
 * each event's leaf hash from its canonical form, each root after it, every stored Merkle node, the
 * aggregate's meta and state, and the ledger entry pointing at it. The ledger check recomputes the
 * store-wide tree from the ledger entries and matches it against the stored ledger and event counts.
 */
import { type Payload, foldState, samePayload } from '../core/event.js';
import { type Frontier, appendLeaf, emptyFrontier, frontierRoot } from '../core/merkle/index.js';
import type { Space } from '../storage/engine.js';
import { prefixEnd } from '../storage/engine.js';
import { openJson } from './codec.js';
import * as K from './keys.js';
import type { EventStore } from './store.js';
import type { AggregateMeta, LedgerReport, VerifyReport } from './types.js';
import { Bad, type Segment, sameNodes, verifySegment } from './verify-segment.js';
import type { Outcome } from './verify-wire.js';

/** Verify one aggregate. Never throws for integrity problems: it reports the first bad version. */
export async function verifyAggregate(store: EventStore, type: string, id: string): Promise<VerifyReport> {
  const live = await store.meta(type, id);
  const base = { aggregate_type: type, aggregate_id: id };
  if (!live)
    return {
      ...base,
      ok: false,
      version: 0,
      merkle_root: '',
      first_bad_version: 1,
      reason: 'aggregate not found',
    };
  const meta = live.meta;
  try {
    const plan = await planSegments(store, meta);
    const { segments } = plan;
    const outcomes = await runSegments(store, plan);
    let state: Payload = {};
    let frontier: Frontier = emptyFrontier;
    for (const [i, o] of outcomes.entries()) {
      if (!o.ok) throw o.failure;
      state = foldState(state, o.result.state);
      frontier = o.result.frontier;
      const next = segments[i + 1];
      // The next segment started from stored nodes, which this one has just checked: the same tree.
      if (next && !sameFrontier(frontier, next.frontier)) {
        throw new Bad(
          next.frontier.size + 1,
          `stored Merkle nodes before version ${next.frontier.size + 1} do not match`,
        );
      }
    }
    const version = frontier.size;
    if (version !== meta.version) {
      throw new Bad(
        version + 1,
        `aggregate records version ${meta.version} but ${version} events are stored`,
      );
    }
    const rootHex = frontierRoot(frontier).toString('hex');
    if (rootHex !== meta.merkle_root)
      throw new Bad(version, 'stored aggregate root does not match the events');
    await checkState(store, meta, state);
    return { ...base, ok: true, version, merkle_root: rootHex };
  } catch (x) {
    if (x instanceof Bad) {
      return {
        ...base,
        ok: false,
        version: meta.version,
        merkle_root: meta.merkle_root,
        first_bad_version: x.version,
        reason: x.message,
      };
    }
    throw x;
  }
}

interface Plan {
  readonly segments: readonly Segment[];
  /** Whether the segments go to the worker threads (a long aggregate) or are verified here. */
  readonly threaded: boolean;
}

/**
 * Cut an aggregate into segments: one when it is short or there are no worker threads; otherwise up to
 * one per worker, each at least `segmentEvents` long, each after the first starting from the frontier
 * its stored Merkle nodes give. When those nodes are damaged, one segment (which then reports them).
 */
async function planSegments(store: EventStore, meta: AggregateMeta): Promise<Plan> {
  const { aggregate_type: type, aggregate_id: id } = meta;
  const space: Space = meta.archived ? 'archive' : 'main';
  const whole = [{ type, id, space, frontier: emptyFrontier, to: undefined }];
  const workers = store.verifyWorkers();
  if (!workers || meta.version < workers.segmentEvents) return { segments: whole, threaded: false };
  const count = Math.min(workers.pool.size, Math.floor(meta.version / workers.segmentEvents));
  const cuts = Array.from({ length: count - 1 }, (_, i) => Math.round(((i + 1) * meta.version) / count));
  const frontiers = await Promise.all(cuts.map((size) => storedFrontier(store, space, type, id, size)));
  if (frontiers.some((f) => f === undefined)) return { segments: whole, threaded: true };
  const starts = [emptyFrontier, ...(frontiers as Frontier[])];
  return {
    segments: starts.map((frontier, i) => ({ type, id, space, frontier, to: cuts[i] })),
    threaded: true,
  };
}

async function runSegments(store: EventStore, plan: Plan): Promise<Outcome[]> {
  const workers = store.verifyWorkers();
  if (workers && plan.threaded) {
    return (await Promise.all(plan.segments.map((s) => workers.pool.run([s], workers.codec)))).flat();
  }
  const source = { engine: store.engine, codec: store.env.codec };
  const outcomes: Outcome[] = [];
  for (const s of plan.segments) {
    outcomes.push(
      await verifySegment(source, s).then(
        (result) => ({ ok: true, result }) as const,
        (failure: unknown) => ({ ok: false, failure }) as const,
      ),
    );
  }
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

const sameFrontier = (a: Frontier, b: Frontier): boolean =>
  a.size === b.size &&
  a.nodes.length === b.nodes.length &&
  a.nodes.every((n, i) => n.equals(b.nodes[i] as Buffer));

async function checkState(store: EventStore, meta: AggregateMeta, state: Payload) {
  let stored = meta.state;
  if (meta.archived) {
    const full = await store.engine.get('archive', K.metaKey(meta.aggregate_type, meta.aggregate_id));
    if (!full) throw new Bad(meta.version, 'archived state is missing');
    stored = openJson<AggregateMeta>(store.env.codec, full, 'archived aggregate').state;
  }
  if (!samePayload(stored, state))
    throw new Bad(meta.version, 'stored state differs from the replay of the events');
}

/**
 * Verify the store-wide ledger: entries are gap-free from 1, the recomputed tree matches every stored
 * ledger node and the stored head, and (with `eventCount`) the entry count equals the events stored.
 */
export async function verifyLedger(store: EventStore, eventCount?: number): Promise<LedgerReport> {
  let frontier: Frontier = emptyFrontier;
  let expected = 1;
  const head = store.ledgerHead();
  const fail = (position: number, reason: string): LedgerReport => ({
    ok: false,
    size: head.size,
    root: head.root,
    first_bad_position: position,
    reason,
  });
  for await (const [key, value] of store.engine.range('main', {
    gte: K.positionKey(1),
    lt: prefixEnd(K.positionPrefix()),
  })) {
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
  const size = expected - 1;
  const root = frontierRoot(frontier).toString('hex');
  if (size !== head.size || root !== head.root) {
    return fail(
      Math.min(size, head.size) + 1,
      `ledger head (${head.size}) does not match its ${size} entries`,
    );
  }
  if (eventCount !== undefined && eventCount !== size) {
    return fail(size, `aggregates hold ${eventCount} events but the ledger has ${size}`);
  }
  return { ok: true, size, root };
}

export interface VerifyAllReport {
  readonly ok: boolean;
  readonly aggregates: number;
  readonly events: number;
  readonly failures: VerifyReport[];
  readonly ledger: LedgerReport;
}

/** Verify every aggregate (system ones included) and then the ledger. */
export async function verifyAll(
  store: EventStore,
  onProgress?: (done: number, total: number) => void,
): Promise<VerifyAllReport> {
  const all = await store.list({ includeSystem: true });
  const failures: VerifyReport[] = [];
  let events = 0;
  let done = 0;
  for (const a of all) {
    const r = await verifyAggregate(store, a.aggregate_type, a.aggregate_id);
    if (!r.ok) failures.push(r);
    events += a.version;
    onProgress?.(++done, all.length);
  }
  const ledger = await verifyLedger(store, events);
  return { ok: failures.length === 0 && ledger.ok, aggregates: all.length, events, failures, ledger };
}
