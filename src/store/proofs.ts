/**
 * Inclusion and consistency proofs over an aggregate's tree and over the store-wide ledger, generated
 * from the stored perfect subtree hashes (one batched read, then pure computation).
 */
import { err, isEventDbxError } from '../core/errors.js';
import {
  type NodeRef,
  consistencyNodes,
  consistencyProof,
  inclusionNodes,
  inclusionProof,
  frontierRoot,
} from '../core/merkle/index.js';
import { aggregateId, aggregateType, version as checkVersion, wholeNumber } from '../core/names.js';
import type { Space } from '../storage/engine.js';
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

async function loadNodes(store: EventStore, space: Space, refs: NodeRef[], entryKey: EntryKey) {
  // Node (level, index) sits at offset 32·level of the entry of the leaf that completed it.
  const leaves = [...new Set(refs.map((r) => K.completingLeaf(r.level, r.index)))];
  const values = await readNodes(store, space, leaves.map(entryKey));
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
  return (level: number, index: number): Buffer => {
    const v = map.get(`${level}/${index}`);
    if (!v) throw err('EDBX_ERR_INTERNAL', { reason: `proof read unplanned node ${level}/${index}` });
    return v;
  };
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

/** Inclusion proof of `version` (leaf index version-1) in the aggregate's tree of `treeSize` events. */
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
  const live = await store.meta(type, id);
  if (!live) throw err('EDBX_ERR_AGGREGATE_NOT_FOUND', { aggregate_type: type, aggregate_id: id });
  const current = live.meta.version;
  if (v > current) {
    throw err('EDBX_ERR_EVENT_NOT_FOUND', { aggregate_type: type, aggregate_id: id, version: v, current });
  }
  const space: Space = live.meta.archived ? 'archive' : 'main';
  const size = treeSizeArg(treeSize, current, 'tree_size');
  if (v > size)
    throw err('EDBX_ERR_INVALID_PROOF_RANGE', { reason: `version ${v} is not in a tree of size ${size}` });
  // One read: the leaf (level 0 of its own entry), the audit path and the nodes of the root.
  const leaf: NodeRef = { level: 0, index: v - 1 };
  const get = await loadNodes(store, space, [leaf, ...inclusionNodes(v - 1, size), ...rootNodes(size)], (n) =>
    K.nodeKey(type, id, n),
  );
  const path = inclusionProof(get, v - 1, size);
  const root = rootFrom(get, size);
  return {
    leaf_index: v - 1,
    tree_size: size,
    leaf_hash: get(0, v - 1).toString('hex'),
    audit_path: path.map((h) => h.toString('hex')),
    root: root.toString('hex'),
  };
}

/** Consistency proof between the aggregate's tree at `from` and at `to` events. */
export async function aggregateConsistencyProof(
  store: EventStore,
  type: string,
  id: string,
  from: unknown,
  to?: unknown,
): Promise<ConsistencyProofView> {
  aggregateType(type);
  aggregateId(id);
  const live = await store.meta(type, id);
  if (!live) throw err('EDBX_ERR_AGGREGATE_NOT_FOUND', { aggregate_type: type, aggregate_id: id });
  const space: Space = live.meta.archived ? 'archive' : 'main';
  return consistency(store, space, live.meta.version, from, to, (n) => K.nodeKey(type, id, n));
}

/** Consistency proof between two sizes of the store-wide ledger tree. */
export function ledgerConsistencyProof(
  store: EventStore,
  from: unknown,
  to?: unknown,
): Promise<ConsistencyProofView> {
  return consistency(store, 'main', store.size, from, to, K.positionKey);
}

/** Inclusion proof of the event at `position` in the ledger tree of `treeSize` events. */
export async function ledgerInclusionProof(
  store: EventStore,
  position: number,
  treeSize?: unknown,
): Promise<InclusionProofView> {
  const size = treeSizeArg(treeSize, store.size, 'tree_size');
  const p = wholeNumber(position);
  if (p === undefined || p < 1 || p > size) {
    throw err('EDBX_ERR_INVALID_PROOF_RANGE', {
      reason: `position ${String(position)} must be between 1 and ${size}`,
    });
  }
  const get = await loadNodes(
    store,
    'main',
    [{ level: 0, index: p - 1 }, ...inclusionNodes(p - 1, size), ...rootNodes(size)],
    K.positionKey,
  );
  return {
    leaf_index: p - 1,
    tree_size: size,
    leaf_hash: get(0, p - 1).toString('hex'),
    audit_path: inclusionProof(get, p - 1, size).map((h) => h.toString('hex')),
    root: rootFrom(get, size).toString('hex'),
  };
}

async function consistency(
  store: EventStore,
  space: Space,
  current: number,
  fromArg: unknown,
  toArg: unknown,
  entryKey: EntryKey,
): Promise<ConsistencyProofView> {
  const second = treeSizeArg(toArg, current, 'to');
  const first = treeSizeArg(fromArg ?? undefined, current, 'from');
  if (fromArg === undefined) throw err('EDBX_ERR_INVALID_PROOF_RANGE', { reason: 'from is required' });
  if (first > second)
    throw err('EDBX_ERR_INVALID_PROOF_RANGE', { reason: `from ${first} is larger than to ${second}` });
  const get = await loadNodes(
    store,
    space,
    [...consistencyNodes(first, second), ...rootNodes(first), ...rootNodes(second)],
    entryKey,
  );
  return {
    first,
    second,
    first_root: rootFrom(get, first).toString('hex'),
    second_root: rootFrom(get, second).toString('hex'),
    consistency_path: consistencyProof(get, first, second).map((h) => h.toString('hex')),
  };
}
