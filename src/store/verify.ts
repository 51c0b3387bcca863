/**
 * Verification recomputes everything from the stored events and never trusts a stored root:
 * each event's leaf hash from its canonical form, each root after it, every stored Merkle node, the
 * aggregate's meta and state, and the ledger entry pointing at it. The ledger check recomputes the
 * store-wide tree from the ledger entries and matches it against the stored ledger and event counts.
 */
import { isEventDbxError } from '../core/errors.js';
import { type Payload, foldState, leafDataOf, samePayload } from '../core/event.js';
import {
  type CompletedNode,
  type Frontier,
  appendLeaf,
  emptyFrontier,
  frontierRoot,
  leafHash,
  sha256,
} from '../core/merkle/index.js';
import { type OpenedEvent, isLegacy, openStoredEvent, servedRecord } from './event-format.js';
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
  let root = frontierRoot(frontier);
  let state: Payload = {};
  let version = 0;
  const ledgerChecks = new LedgerEntryChecks(store, type, id);
  // The N entries (one per version) are read in step with the events.
  const nodePrefix = K.nodePrefix(type, id);
  const nodeChunks = store.engine
    .valueChunks(space, { gte: nodePrefix, lt: prefixEnd(nodePrefix) })
    [Symbol.asyncIterator]();
  let nodes: Buffer[] = [];
  let nodeAt = 0;
  const nextNodes = async (): Promise<Buffer | undefined> => {
    if (nodeAt >= nodes.length) {
      const r = await nodeChunks.next();
      if (r.done) return undefined;
      nodes = r.value;
      nodeAt = 0;
    }
    return nodes[nodeAt++];
  };
  try {
    const prefix = K.eventPrefix(type, id);
    for await (const chunk of store.engine.valueChunks(space, { gte: prefix, lt: prefixEnd(prefix) })) {
      for (const value of chunk) {
        const expected = version + 1;
        let opened: OpenedEvent;
        try {
          const where = `event ${type}/${id}@${expected}`;
          opened = openStoredEvent(store.env.codec, value, where);
        } catch (x) {
          throw new Bad(expected, isEventDbxError(x) ? x.message : 'undecodable record');
        }
        const e = opened.fields;
        if (Number.isSafeInteger(e.version) && e.version > expected) {
          throw new Bad(expected, `event ${expected} is missing (found ${e.version})`);
        }
        if (e.aggregate_type !== type || e.aggregate_id !== id || e.version !== expected) {
          throw new Bad(expected, 'record does not belong at this key');
        }
        // The leaf hash of the bytes as stored (they are the canonical leaf data), never the stored hash.
        const leaf = isLegacy(opened) ? leafHash(leafDataOf(servedRecord(opened))) : sha256(opened.leafInput);
        if (!leaf.equals(opened.hash)) throw new Bad(expected, 'event content does not match its hash');
        const grown = appendLeaf(frontier, leaf);
        frontier = grown.frontier;
        if (!sameNodes(await nextNodes(), grown.completed)) {
          throw new Bad(expected, `stored Merkle nodes of version ${expected} do not match`);
        }
        root = frontierRoot(frontier);
        if (!root.equals(opened.root)) {
          throw new Bad(expected, 'merkle_root does not match the recomputed tree');
        }
        state = foldState(state, e.payload);
        await ledgerChecks.add(e.position, leaf);
        version = expected;
      }
    }
    if ((await nextNodes()) !== undefined) {
      throw new Bad(version + 1, `stored Merkle nodes exist beyond version ${version}`);
    }
    if (version !== live.meta.version) {
      throw new Bad(
        version + 1,
        `aggregate records version ${live.meta.version} but ${version} events are stored`,
      );
    }
    const rootHex = root.toString('hex');
    if (rootHex !== live.meta.merkle_root)
      throw new Bad(version, 'stored aggregate root does not match the events');
    await checkState(store, live.meta, state);
    await ledgerChecks.done();
    return { ...base, ok: true, version, merkle_root: rootHex };
  } catch (caught) {
    // A ledger-entry check still in flight may have failed at an earlier version: report the first.
    const pending = await ledgerChecks.settle();
    const x =
      pending instanceof Bad && (!(caught instanceof Bad) || pending.version < caught.version)
        ? pending
        : caught;
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
  } finally {
    // Stopped early: close the node scan too (the event scan closes with its loop).
    await nodeChunks.return?.(undefined);
  }
}

/** Whether a stored N or P entry holds exactly these completed nodes (level 0 first). */
function sameNodes(stored: Buffer | undefined, completed: readonly CompletedNode[]): boolean {
  if (!stored || stored.length !== 32 * completed.length) return false;
  return completed.every((n, i) => n.hash.compare(stored, 32 * i, 32 * i + 32) === 0);
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

/**
 * Checks that each event's ledger entry holds its hash and points back at it. Reads are issued as the
 * events are verified (a few chunks in flight, so memory stays bounded) and checked in order.
 */
class LedgerEntryChecks {
  readonly #pending: Array<Promise<void>> = [];
  #part: Array<[number, Buffer]> = [];
  #firstVersion = 1;

  constructor(
    private readonly store: EventStore,
    private readonly type: string,
    private readonly id: string,
  ) {}

  /** Queue the entry of `version` (called in version order). */
  async add(position: number, leaf: Buffer): Promise<void> {
    this.#part.push([position, leaf]);
    if (this.#part.length >= 1024) await this.#flush();
  }

  async #flush(): Promise<void> {
    if (this.#part.length === 0) return;
    const part = this.#part;
    const first = this.#firstVersion;
    this.#part = [];
    this.#firstVersion += part.length;
    const reading = this.store.engine.getMany(
      'main',
      part.map(([p]) => K.positionKey(p)),
    );
    this.#pending.push(reading.then((values) => this.#check(part, first, values)));
    // The first failing check wins, so failures surface in version order.
    if (this.#pending.length > 4) await this.#pending.shift();
  }

  #check(part: Array<[number, Buffer]>, first: number, values: (Buffer | undefined)[]): void {
    part.forEach(([p, leaf], j) => {
      const v = values[j];
      const version = first + j;
      const entry = v && K.decodeLedgerEntry(p, v);
      if (!entry || !entry.leaf.equals(leaf))
        throw new Bad(version, `ledger entry ${p} does not match the event`);
      const { ref } = entry;
      if (ref.type !== this.type || ref.id !== this.id || ref.version !== version) {
        throw new Bad(version, `ledger entry ${p} points elsewhere`);
      }
    });
  }

  /** Wait for every check queued so far; throws the first failure. */
  async done(): Promise<void> {
    await this.#flush();
    const failure = await this.settle();
    if (failure !== undefined) throw failure;
  }

  /** Let every check in flight finish (none is left unhandled); the earliest failure, if any. */
  async settle(): Promise<unknown> {
    const results = await Promise.allSettled(this.#pending.splice(0));
    return results.find((r) => r.status === 'rejected')?.reason;
  }
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
