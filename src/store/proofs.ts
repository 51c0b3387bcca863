/**
 * Inclusion and consistency proofs over an aggregate's tree and over the store-wide ledger, generated
 * from the stored perfect subtree hashes (one batched read, then pure computation).
 *
 * The stored nodes are not sealed, so a proof is never served on their word alone: an aggregate's
 * proof must lead to the `merkle_root` its event at that tree size carries (sealed with the event),
 * and a ledger proof must at least verify against the root its own entries give. The ledger head a
 * checkpoint signs is checked against the entries too (`checkedLedgerHead`).
 */
import { err, isEventDbxError } from '../core/errors.js';
import {
  type NodeRef,
  consistencyNodes,
  consistencyProof,
  inclusionNodes,
  inclusionProof,
  frontierRoot,
  verifyConsistency,
  verifyInclusion,
} from '../core/merkle/index.js';
import { aggregateId, aggregateType, version as checkVersion, wholeNumber } from '../core/names.js';
import type { Space } from '../storage/engine.js';
import { openEventAt } from './event-format.js';
import * as K from './keys.js';
import type { EventStore } from './store.js';
import type { ConsistencyProofView, InclusionProofView } from './types.js';

/** The key of the entry holding the perfect node completed by 1-based leaf `n` (an N or a P key). */
type EntryKey = (n: number) => Buffer;

/**
 * Read the planned nodes in one batch. Synchronous where the engine offers it: a proof needs a few
 * dozen 32-byte point reads, usually from the block cache, which cost less than one thread-pool hop.
 */
async function readNodes(store: EventStore, space: Space, keys: Buffer[]): Promise<(Buffer | undefined)[]> {
  try {
    return store.engine.getManySync(space, keys);
  } catch (e) {
    if (!isEventDbxError(e, 'EDBX_ERR_NOT_SUPPORTED')) throw e;
    return store.engine.getMany(space, keys);
  }
}

/**
 * Read the entries holding `refs` and, in the same batch, the values of `also` (the events whose roots
 * a proof is checked against). Returns a node getter and those values.
 */
async function loadNodes(
  store: EventStore,
  space: Space,
  refs: NodeRef[],
  entryKey: EntryKey,
  also: Buffer[] = [],
): Promise<[(level: number, index: number) => Buffer, (Buffer | undefined)[]]> {
  // Node (level, index) sits at offset 32·level of the entry of the leaf that completed it.
  const leaves = [...new Set(refs.map((r) => K.completingLeaf(r.level, r.index)))];
  const values = await readNodes(store, space, [...leaves.map(entryKey), ...also]);
  const entries = new Map(leaves.map((n, i) => [n, values[i]]));
  const map = new Map<string, Buffer>();
  for (const r of refs) {
    const v = entries.get(K.completingLeaf(r.level, r.index));
    const at = 32 * r.level;
    if (!v || v.length < at + 32) {
      throw err('EDBX_ERR_INTEGRITY', {
        where: `Merkle node ${r.level}/${r.index}`,
        reason: 'missing or malformed',
      });
    }
    map.set(`${r.level}/${r.index}`, v.subarray(at, at + 32));
  }
  const get = (level: number, index: number): Buffer => {
    const v = map.get(`${level}/${index}`);
    if (!v) throw err('EDBX_ERR_INTERNAL', { reason: `proof read unplanned node ${level}/${index}` });
    return v;
  };
  return [get, values.slice(leaves.length)];
}

/** The perfect nodes whose hashes fold into the root of the first `size` leaves, largest first. */
function rootNodes(size: number): NodeRef[] {
  const refs: NodeRef[] = [];
  let start = 0;
  for (let level = 52; level >= 0; level--) {
    const block = 2 ** level;
    if (size - start >= block) {
      refs.push({ level, index: start / block });
      start += block;
    }
  }
  return refs;
}

/** Root of the first `size` leaves from loaded nodes: `rootNodes(size)` are that tree's frontier. */
const rootFrom = (get: (level: number, index: number) => Buffer, size: number): Buffer =>
  frontierRoot({ size, nodes: rootNodes(size).map((r) => get(r.level, r.index)) });

function treeSizeArg(value: unknown, current: number, name: string): number {
  if (value === undefined) return current;
  const n = wholeNumber(value);
  if (n === undefined || n < 1 || n > current) {
    throw err('EDBX_ERR_INVALID_PROOF_RANGE', {
      reason: `${name} ${String(value)} must be between 1 and ${current}`,
    });
  }
  return n;
}

/** The root of the aggregate's tree at `size` events, as its event `size` carries it (sealed with it). */
function carriedRoot(store: EventStore, value: Buffer | undefined, type: string, id: string, size: number) {
  if (!value) {
    throw err('EDBX_ERR_INTEGRITY', { where: `event ${type}/${id}@${size}`, reason: 'it is missing' });
  }
  return openEventAt(store.env.codec, value, type, id, size).merkle_root;
}

/** Stored Merkle nodes of an aggregate that do not lead to the root its events carry. */
const nodesDisagree = (type: string, id: string, reason: string) =>
  err('EDBX_ERR_INTEGRITY', { where: `Merkle nodes of ${type}/${id}`, reason });

/**
 * Inclusion proof of `version` (leaf index version-1) in the aggregate's tree of `treeSize` events.
 * Refused with EDBX_ERR_INTEGRITY unless it leads to the `merkle_root` of the event at `treeSize`.
 */
export async function eventInclusionProof(
  store: EventStore,
  type: string,
  id: string,
  version: number,
  treeSize?: unknown,
): Promise<InclusionProofView> {
  aggregateType(type);
  aggregateId(id);
  const v = checkVersion(version);
  // In the keyspace the meta names, again if an archive or restore moved the nodes meanwhile.
  return store.readAggregate(type, id, async (space, live) => {
    const current = live.meta.version;
    if (v > current) {
      throw err('EDBX_ERR_EVENT_NOT_FOUND', { aggregate_type: type, aggregate_id: id, version: v, current });
    }
    return inclusionIn(store, space, type, id, v, treeSizeArg(treeSize, current, 'tree_size'));
  });
}

/** The inclusion proof, read from the keyspace that holds the aggregate. */
async function inclusionIn(
  store: EventStore,
  space: Space,
  type: string,
  id: string,
  v: number,
  size: number,
): Promise<InclusionProofView> {
  if (v > size)
    throw err('EDBX_ERR_INVALID_PROOF_RANGE', { reason: `version ${v} is not in a tree of size ${size}` });
  // One read: the leaf (level 0 of its own entry), the audit path, the nodes of the root, and the
  // event at `size`, whose sealed `merkle_root` the proof must lead to.
  const leaf: NodeRef = { level: 0, index: v - 1 };
  const [get, [last]] = await loadNodes(
    store,
    space,
    [leaf, ...inclusionNodes(v - 1, size), ...rootNodes(size)],
    (n) => K.nodeKey(type, id, n),
    [K.eventKey(type, id, size)],
  );
  const expected = carriedRoot(store, last, type, id, size);
  const leafHash = get(0, v - 1);
  const path = inclusionProof(get, v - 1, size);
  const root = rootFrom(get, size);
  if (root.toString('hex') !== expected || !verifyInclusion(leafHash, v - 1, size, path, root)) {
    throw nodesDisagree(
      type,
      id,
      `the proof of version ${v} does not lead to the root event ${size} carries (run \`aggregate verify\`)`,
    );
  }
  return {
    leaf_index: v - 1,
    tree_size: size,
    leaf_hash: leafHash.toString('hex'),
    audit_path: path.map((h) => h.toString('hex')),
    root: expected,
  };
}

/**
 * Consistency proof between the aggregate's tree at `from` and at `to` events. Refused with
 * EDBX_ERR_INTEGRITY unless its roots are the `merkle_root`s the events at `from` and `to` carry.
 */
export async function aggregateConsistencyProof(
  store: EventStore,
  type: string,
  id: string,
  from: unknown,
  to?: unknown,
): Promise<ConsistencyProofView> {
  aggregateType(type);
  aggregateId(id);
  // In the keyspace the meta names, again if an archive or restore moved the nodes meanwhile.
  return store.readAggregate(type, id, (space, live) =>
    consistencyIn(store, space, type, id, ...consistencyRange(live.meta.version, from, to)),
  );
}

/** The consistency proof, read from the keyspace that holds the aggregate. */
async function consistencyIn(
  store: EventStore,
  space: Space,
  type: string,
  id: string,
  first: number,
  second: number,
): Promise<ConsistencyProofView> {
  const [get, [atFirst, atSecond]] = await loadNodes(
    store,
    space,
    consistencyRefs(first, second),
    (n) => K.nodeKey(type, id, n),
    [K.eventKey(type, id, first), K.eventKey(type, id, second)],
  );
  const proof = consistencyView(get, first, second);
  if (
    proof.first_root !== carriedRoot(store, atFirst, type, id, first) ||
    proof.second_root !== carriedRoot(store, atSecond, type, id, second) ||
    !verifiesAsServed(proof)
  ) {
    throw nodesDisagree(
      type,
      id,
      `the proof from ${first} to ${second} events does not join the roots events ${first} and ${second} carry (run \`aggregate verify\`)`,
    );
  }
  return proof;
}

/** Stored ledger nodes that contradict each other. */
const ledgerDisagrees = (reason: string) => err('EDBX_ERR_INTEGRITY', { where: 'ledger entries', reason });

/**
 * Consistency proof between two sizes of the store-wide ledger tree. No event carries a ledger root:
 * the roots are the ones the ledger entries give (what checkpoints sign), and the proof must verify
 * between them.
 */
export async function ledgerConsistencyProof(
  store: EventStore,
  from: unknown,
  to?: unknown,
): Promise<ConsistencyProofView> {
  const [first, second] = consistencyRange(store.size, from, to);
  const [get] = await loadNodes(store, 'main', consistencyRefs(first, second), K.positionKey);
  const proof = consistencyView(get, first, second);
  if (!verifiesAsServed(proof)) {
    throw ledgerDisagrees(`the consistency proof from ${first} to ${second} events does not verify`);
  }
  return proof;
}

/**
 * Inclusion proof of the event at `position` in the ledger tree of `treeSize` events (default: the
 * current size). Its root is the one the ledger entries give, which a checkpoint of that size signs.
 */
export async function ledgerInclusionProof(
  store: EventStore,
  position: unknown,
  treeSize?: unknown,
): Promise<InclusionProofView> {
  const size = treeSizeArg(treeSize, store.size, 'tree_size');
  const p = wholeNumber(position);
  if (p === undefined || p < 1 || p > size) {
    throw err('EDBX_ERR_INVALID_PROOF_RANGE', {
      reason: `position ${String(position)} must be between 1 and ${size}`,
    });
  }
  const [get] = await loadNodes(
    store,
    'main',
    [{ level: 0, index: p - 1 }, ...inclusionNodes(p - 1, size), ...rootNodes(size)],
    K.positionKey,
  );
  const leafHash = get(0, p - 1);
  const path = inclusionProof(get, p - 1, size);
  const root = rootFrom(get, size);
  if (!verifyInclusion(leafHash, p - 1, size, path, root)) {
    throw ledgerDisagrees(`the proof of position ${p} in ${size} events does not verify`);
  }
  return {
    leaf_index: p - 1,
    tree_size: size,
    leaf_hash: leafHash.toString('hex'),
    audit_path: path.map((h) => h.toString('hex')),
    root: root.toString('hex'),
  };
}

/**
 * The aggregate and version of the event at a ledger position (its P entry's reference), to decide
 * whether a token limited to some aggregates may have its proof; undefined when `position` is not a
 * position of the store (the proof then says why). A missing or malformed entry is EDBX_ERR_INTEGRITY:
 * access is never decided without it.
 */
export async function ledgerEventRef(store: EventStore, position: unknown): Promise<K.EventRef | undefined> {
  const p = wholeNumber(position);
  if (p === undefined || p < 1 || p > store.size) return undefined;
  const value = await store.engine.get('main', K.positionKey(p));
  const entry = value === undefined ? undefined : K.decodeLedgerEntry(p, value);
  if (!entry)
    throw err('EDBX_ERR_INTEGRITY', {
      where: `ledger position ${p}`,
      reason: value === undefined ? 'missing entry' : 'malformed entry',
    });
  return entry.ref;
}

/**
 * The ledger head a checkpoint signs, checked against the ledger entries: the root of the head's
 * frontier (`G ledger`, stored unsealed) must be the root the entries' nodes give for that size,
 * O(log n) reads. Throws EDBX_ERR_INTEGRITY when they disagree: a store must never sign a head its
 * entries do not back (one flipped byte would make it sign two roots for one size).
 */
export async function checkedLedgerHead(store: EventStore): Promise<{ size: number; root: string }> {
  const head = store.ledgerHead();
  if (head.size === 0) return head;
  const fail = (reason: string) =>
    err('EDBX_ERR_INTEGRITY', { where: 'the ledger head', reason: `${reason} (run \`aggregate verify\`)` });
  let root: Buffer;
  try {
    const [get] = await loadNodes(store, 'main', rootNodes(head.size), K.positionKey);
    root = rootFrom(get, head.size);
  } catch (e) {
    if (!isEventDbxError(e, 'EDBX_ERR_INTEGRITY')) throw e;
    throw fail(`the ledger entries of its ${head.size} events are missing or malformed`);
  }
  if (root.toString('hex') !== head.root) {
    throw fail(`its root for ${head.size} events is not the one the ledger entries give`);
  }
  return head;
}

/** `[first, second]` of a consistency proof from the `from` and `to` arguments (`to` defaults to `current`). */
function consistencyRange(current: number, fromArg: unknown, toArg: unknown): [number, number] {
  const second = treeSizeArg(toArg, current, 'to');
  const first = treeSizeArg(fromArg ?? undefined, current, 'from');
  if (fromArg === undefined) throw err('EDBX_ERR_INVALID_PROOF_RANGE', { reason: 'from is required' });
  if (first > second)
    throw err('EDBX_ERR_INVALID_PROOF_RANGE', { reason: `from ${first} is larger than to ${second}` });
  return [first, second];
}

/** The nodes a consistency proof and both its roots are computed from. */
const consistencyRefs = (first: number, second: number): NodeRef[] => [
  ...consistencyNodes(first, second),
  ...rootNodes(first),
  ...rootNodes(second),
];

function consistencyView(
  get: (level: number, index: number) => Buffer,
  first: number,
  second: number,
): ConsistencyProofView {
  return {
    first,
    second,
    first_root: rootFrom(get, first).toString('hex'),
    second_root: rootFrom(get, second).toString('hex'),
    consistency_path: consistencyProof(get, first, second).map((h) => h.toString('hex')),
  };
}

/** Whether a consistency proof verifies as it would be served (a client's check, run before serving). */
const verifiesAsServed = (p: ConsistencyProofView): boolean =>
  verifyConsistency(
    p.first,
    p.second,
    Buffer.from(p.first_root, 'hex'),
    Buffer.from(p.second_root, 'hex'),
    p.consistency_path.map((h) => Buffer.from(h, 'hex')),
  );
