/**
 * Verification recomputes everything from the stored events and never trusts a stored root:
 * each event's leaf hash from its canonical form, each root after it, every stored Merkle node, the
 * aggregate's meta and state, and the ledger entry pointing at it. The ledger check recomputes the
 * store-wide tree from the ledger entries and matches it against the stored ledger and event counts.
 */
import { isEventDbxError } from '../core/errors.js';
import { type Payload, foldState, leafDataOf, samePayload } from '../core/event.js';
import {
  type Frontier,
  appendLeaf,
  emptyFrontier,
  frontierRoot,
  leafHash,
  sha256,
} from '../core/merkle/index.js';
import { type OpenedEvent, decodeEvent, isLegacy } from './event-format.js';
import type { Space } from '../storage/engine.js';
import { prefixEnd } from '../storage/engine.js';
import { openJson } from './codec.js';
import * as K from './keys.js';
import type { EventStore } from './store.js';
import type { AggregateMeta, LedgerReport, VerifyReport } from './types.js';

class Bad extends Error {
  constructor(
    readonly version: number,
    reason: string,
  ) {
    super(reason);
  }
}

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
  const space: Space = live.meta.archived ? 'archive' : 'main';
  let frontier: Frontier = emptyFrontier;
  let state: Payload = {};
  let version = 0;
  // Numeric keys (index * 64 + level; index < 2^46): much cheaper than strings for 2n entries.
  const nodes = new Map<number, Buffer>();
  const positions: Array<[number, Buffer]> = [];
  try {
    const prefix = K.eventPrefix(type, id);
    for await (const [key, value] of store.engine.range(space, { gte: prefix, lt: prefixEnd(prefix) })) {
      const expected = version + 1;
      const keyVersion = K.readU64(key, key.length - 8);
      if (keyVersion !== expected)
        throw new Bad(expected, `event ${expected} is missing (found ${keyVersion})`);
      let opened: OpenedEvent;
      try {
        const where = `event ${type}/${id}@${expected}`;
        opened = decodeEvent(store.env.codec.open(value, where), where);
      } catch (x) {
        throw new Bad(expected, isEventDbxError(x) ? x.message : 'undecodable record');
      }
      const e = opened.record;
      if (e.aggregate_type !== type || e.aggregate_id !== id || e.version !== expected) {
        throw new Bad(expected, 'record does not belong at this key');
      }
      // The leaf hash of the bytes as stored (they are the canonical leaf data), never the stored hash.
      const leaf = isLegacy(opened) ? leafHash(leafDataOf(e)) : sha256(opened.leafInput);
      if (!leaf.equals(opened.hash)) throw new Bad(expected, 'event content does not match its hash');
      const grown = appendLeaf(frontier, leaf);
      frontier = grown.frontier;
      for (const n of grown.completed) nodes.set(n.index * 64 + n.level, n.hash);
      if (!frontierRoot(frontier).equals(opened.root)) {
        throw new Bad(expected, 'merkle_root does not match the recomputed tree');
      }
      state = foldState(state, e.payload);
      positions.push([e.position, leaf]);
      version = expected;
    }
    if (version !== live.meta.version) {
      throw new Bad(
        version + 1,
        `aggregate records version ${live.meta.version} but ${version} events are stored`,
      );
    }
    const root = frontierRoot(frontier).toString('hex');
    if (root !== live.meta.merkle_root)
      throw new Bad(version, 'stored aggregate root does not match the events');
    await checkNodes(store, space, type, id, nodes);
    await checkState(store, live.meta, state);
    await checkLedgerEntries(store, type, id, positions);
    return { ...base, ok: true, version, merkle_root: root };
  } catch (x) {
    if (x instanceof Bad) {
      return {
        ...base,
        ok: false,
        version: live.meta.version,
        merkle_root: live.meta.merkle_root,
        first_bad_version: x.version,
        reason: x.message,
      };
    }
    throw x;
  }
}

async function checkNodes(
  store: EventStore,
  space: Space,
  type: string,
  id: string,
  nodes: Map<number, Buffer>,
) {
  const prefix = K.nodePrefix(type, id);
  let count = 0;
  for await (const [key, value] of store.engine.range(space, { gte: prefix, lt: prefixEnd(prefix) })) {
    const level = key[key.length - 9]!;
    const index = K.readU64(key, key.length - 8);
    const want = nodes.get(index * 64 + level);
    const firstLeaf = index * 2 ** level + 1;
    if (!want || !want.equals(value))
      throw new Bad(firstLeaf, `stored Merkle node ${level}/${index} does not match`);
    count++;
  }
  if (count !== nodes.size) throw new Bad(1, `${nodes.size - count} stored Merkle nodes are missing`);
}

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

async function checkLedgerEntries(
  store: EventStore,
  type: string,
  id: string,
  positions: Array<[number, Buffer]>,
) {
  const chunk = 1024;
  for (let i = 0; i < positions.length; i += chunk) {
    const part = positions.slice(i, i + chunk);
    const values = await store.engine.getMany(
      'main',
      part.map(([p]) => K.positionKey(p)),
    );
    part.forEach(([p, leaf], j) => {
      const v = values[j];
      const version = i + j + 1;
      if (!v || !v.subarray(0, 32).equals(leaf))
        throw new Bad(version, `ledger entry ${p} does not match the event`);
      const ref = K.decodeRef(v.subarray(32));
      if (ref.type !== type || ref.id !== id || ref.version !== version) {
        throw new Bad(version, `ledger entry ${p} points elsewhere`);
      }
    });
  }
}

/**
 * Verify the store-wide ledger: entries are gap-free from 1, the recomputed tree matches every stored
 * ledger node and the stored head, and (with `eventCount`) the entry count equals the events stored.
 */
export async function verifyLedger(store: EventStore, eventCount?: number): Promise<LedgerReport> {
  let frontier: Frontier = emptyFrontier;
  let expected = 1;
  const nodeKeys: Buffer[] = [];
  const nodeHashes: Buffer[] = [];
  const head = store.ledgerHead();
  const fail = (position: number, reason: string): LedgerReport => ({
    ok: false,
    size: head.size,
    root: head.root,
    first_bad_position: position,
    reason,
  });
  const flush = async (): Promise<number | undefined> => {
    const stored = await store.engine.getMany('main', nodeKeys);
    const bad = stored.findIndex((v, i) => !v || !v.equals(nodeHashes[i]!));
    const at = bad >= 0 ? K.readU64(nodeKeys[bad]!, 2) * 2 ** nodeKeys[bad]![1]! + 1 : undefined;
    nodeKeys.length = 0;
    nodeHashes.length = 0;
    return at;
  };
  for await (const [key, value] of store.engine.range('main', {
    gte: K.positionKey(1),
    lt: prefixEnd(K.positionPrefix()),
  })) {
    const position = K.readU64(key, 1);
    if (position !== expected) return fail(expected, `ledger entry ${expected} is missing`);
    if (value.length < 32 + 11) return fail(position, 'malformed ledger entry');
    const grown = appendLeaf(frontier, value.subarray(0, 32));
    frontier = grown.frontier;
    for (const n of grown.completed) {
      nodeKeys.push(K.ledgerNodeKey(n.level, n.index));
      nodeHashes.push(n.hash);
    }
    if (nodeKeys.length >= 4096) {
      const bad = await flush();
      if (bad !== undefined) return fail(bad, 'stored ledger node does not match the entries');
    }
    expected++;
  }
  const bad = await flush();
  if (bad !== undefined) return fail(bad, 'stored ledger node does not match the entries');
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
