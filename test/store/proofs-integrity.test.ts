/**
 * Proofs are never served on the word of the stored Merkle nodes alone (tamper-evidence audit, finding
 * 9): the nodes are stored unsealed, so a changed byte must make a proof refused with
 * EDBX_ERR_INTEGRITY, never served with a root other than the one the events carry. The tampering goes
 * through the storage engine directly, as an attacker without the keys would.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { verifyConsistency, verifyInclusion } from '../../src/core/merkle/index.js';
import { MemoryEngine } from '../../src/storage/memory/memory-engine.js';
import {
  EventStore,
  aggregateConsistencyProof,
  eventInclusionProof,
  ledgerConsistencyProof,
  ledgerInclusionProof,
} from '../../src/store/index.js';
import * as K from '../../src/store/keys.js';
import { expectCode } from '../helpers/expect.js';

const jane = { issuedBy: { group: 'admin', user: 'jane' } };
const hex = (h: string) => Buffer.from(h, 'hex');

let engine: MemoryEngine;
let store: EventStore;

beforeEach(async () => {
  engine = new MemoryEngine();
  store = await EventStore.open({ engine });
  for (let i = 1; i <= 7; i++) {
    await store.append(
      { aggregate_type: 'patient', aggregate_id: 'p-001', event_type: 'patient-updated', payload: { i } },
      jane,
    );
  }
  await store.append(
    { aggregate_type: 'order', aggregate_id: 'o-1', event_type: 'placed', payload: {} },
    jane,
  );
});
afterEach(() => store.close());

/** Flip one bit of the stored value at `key` (main keyspace). */
async function flip(key: Buffer, offset: number): Promise<void> {
  const value = Buffer.from((await engine.get('main', key))!);
  value[offset]! ^= 0x01;
  await engine.write([{ type: 'put', space: 'main', key, value }], { sync: true });
}

/**
 * Every inclusion proof (version × tree size) and consistency proof (from ≤ to) of p-001: each is
 * either refused with EDBX_ERR_INTEGRITY or verifies against the roots the events carry.
 */
async function everyProof(): Promise<{ served: number; refused: number }> {
  const roots = (await store.events('patient', 'p-001')).map((e) => e.merkle_root);
  let served = 0;
  let refused = 0;
  const attempt = async <T>(p: Promise<T>, check: (r: T) => void) => {
    try {
      check(await p);
      served++;
    } catch (e) {
      await expectCode(Promise.reject(e), 'EDBX_ERR_INTEGRITY');
      refused++;
    }
  };
  for (let size = 1; size <= 7; size++) {
    for (let v = 1; v <= size; v++) {
      await attempt(eventInclusionProof(store, 'patient', 'p-001', v, size), (p) => {
        expect(p.root).toBe(roots[size - 1]);
        expect(
          verifyInclusion(hex(p.leaf_hash), v - 1, size, p.audit_path.map(hex), hex(roots[size - 1]!)),
        ).toBe(true);
      });
    }
    for (let from = 1; from <= size; from++) {
      await attempt(aggregateConsistencyProof(store, 'patient', 'p-001', from, size), (c) => {
        expect([c.first_root, c.second_root]).toEqual([roots[from - 1], roots[size - 1]]);
        const ok = verifyConsistency(
          from,
          size,
          hex(roots[from - 1]!),
          hex(roots[size - 1]!),
          c.consistency_path.map(hex),
        );
        expect(ok).toBe(true);
      });
    }
  }
  return { served, refused };
}

describe('aggregate proofs are checked against the roots the events carry (finding 9)', () => {
  it('untouched, every proof is served and verifies against the merkle_root of the event at its size', async () => {
    expect(await everyProof()).toEqual({ served: 28 + 28, refused: 0 });
  });

  it('a flipped byte of a stored level-2 node: proofs that use it are refused, never served with another root', async () => {
    // N p-001@4 holds levels 0..2; byte 70 is in node (2, 0), the root of the first 4 events.
    await flip(K.nodeKey('patient', 'p-001', 4), 70);
    const e = await expectCode(eventInclusionProof(store, 'patient', 'p-001', 1), 'EDBX_ERR_INTEGRITY');
    expect(e.message).toMatch(/Merkle nodes of patient\/p-001.*root event 7 carries/);
    await expectCode(aggregateConsistencyProof(store, 'patient', 'p-001', 4, 7), 'EDBX_ERR_INTEGRITY');
    const { served, refused } = await everyProof();
    expect(refused).toBeGreaterThan(0);
    expect(served).toBeGreaterThan(0); // proofs that do not touch the node (e.g. size 3) still work
  });

  it('a flipped sibling on an audit path (the root nodes untouched) is refused too', async () => {
    // Leaf 2 is the sibling of leaf 1; the tree of 7 events is rooted in nodes (2,0), (1,2), (0,6).
    await flip(K.nodeKey('patient', 'p-001', 2), 5);
    await expectCode(eventInclusionProof(store, 'patient', 'p-001', 1, 7), 'EDBX_ERR_INTEGRITY');
    await expectCode(eventInclusionProof(store, 'patient', 'p-001', 1, 2), 'EDBX_ERR_INTEGRITY');
    expect((await eventInclusionProof(store, 'patient', 'p-001', 5, 7)).root).toBe(
      (await store.aggregate('patient', 'p-001')).merkle_root,
    );
    await expectCode(aggregateConsistencyProof(store, 'patient', 'p-001', 1, 3), 'EDBX_ERR_INTEGRITY');
    await everyProof();
  });

  it('an event missing at the tree size is an integrity error, not a proof', async () => {
    await engine.write([{ type: 'del', space: 'main', key: K.eventKey('patient', 'p-001', 6) }], {
      sync: true,
    });
    await expectCode(eventInclusionProof(store, 'patient', 'p-001', 2, 6), 'EDBX_ERR_INTEGRITY');
    await expectCode(aggregateConsistencyProof(store, 'patient', 'p-001', 6, 7), 'EDBX_ERR_INTEGRITY');
    expect((await eventInclusionProof(store, 'patient', 'p-001', 2, 7)).tree_size).toBe(7);
  });
});

describe('ledger proofs verify before they are served', () => {
  it('untouched, inclusion proofs of every position verify against the root of the ledger head', async () => {
    const head = store.ledgerHead();
    expect(head.size).toBe(8);
    for (let p = 1; p <= 8; p++) {
      const proof = await ledgerInclusionProof(store, p);
      expect(proof.root).toBe(head.root);
      expect(verifyInclusion(hex(proof.leaf_hash), p - 1, 8, proof.audit_path.map(hex), hex(head.root))).toBe(
        true,
      );
    }
  });

  it('a flipped sibling in a ledger entry makes the proofs through it refused', async () => {
    // P 2 holds the leaf of position 2 (the sibling of position 1) and node (1, 0).
    await flip(K.positionKey(2), 3);
    await expectCode(ledgerInclusionProof(store, 1), 'EDBX_ERR_INTEGRITY');
    await expectCode(ledgerConsistencyProof(store, 1, 3), 'EDBX_ERR_INTEGRITY');
    expect((await ledgerInclusionProof(store, 6)).root).toBe(store.ledgerHead().root);
  });
});
