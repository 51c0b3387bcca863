/** The key layout is a storage format: these pin its bytes (src/store/keys.ts documents them). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as K from '../src/store/keys.js';

const be64 = (n: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
};
const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');
const Z = Buffer.from([0]);

describe('key layout', () => {
  it('spells aggregate keys as tag, type, NUL, id[, NUL, 8-byte big-endian version]', () => {
    const [type, id, v] = ['patient', 'p-001/ü', 258];
    const part = Buffer.concat([utf8(type), Z, utf8(id)]);
    expect(K.metaKey(type, id)).toEqual(Buffer.concat([utf8('M'), part]));
    expect(K.eventKey(type, id, v)).toEqual(Buffer.concat([utf8('E'), part, Z, be64(v)]));
    expect(K.nodeKey(type, id, v)).toEqual(Buffer.concat([utf8('N'), part, Z, be64(v)]));
    expect(K.snapshotKey(type, id, v)).toEqual(Buffer.concat([utf8('S'), part, Z, be64(v)]));
    expect(K.eventKey(type, id, v).subarray(0, -8)).toEqual(K.eventPrefix(type, id));
    expect(K.positionKey(2 ** 40 + 5)).toEqual(Buffer.concat([utf8('P'), be64(2 ** 40 + 5)]));
    expect(K.encodeRef({ type, id, version: v })).toEqual(Buffer.concat([part, Z, be64(v)]));
  });

  it('round-trips every safe integer through u64/readU64, in byte order = numeric order', () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), fc.maxSafeNat(), (a, b) => {
        expect(K.u64(a)).toEqual(be64(a));
        expect(K.readU64(K.u64(a))).toBe(a);
        expect(Math.sign(Buffer.compare(K.u64(a), K.u64(b)))).toBe(Math.sign(a - b));
      }),
    );
  });

  it('round-trips event references and ledger entries', () => {
    const ref = { type: 'order', id: 'ö-1', version: 2 ** 33 };
    expect(K.decodeRef(K.encodeRef(ref))).toEqual(ref);
    const nodes = [Buffer.alloc(32, 1), Buffer.alloc(32, 2)];
    // Position 2 completes two nodes (levels 0 and 1).
    const entry = K.decodeLedgerEntry(2, K.encodeLedgerEntry(nodes, ref))!;
    expect(entry.nodes).toEqual(Buffer.concat(nodes));
    expect(entry.leaf).toEqual(nodes[0]);
    expect(entry.ref).toEqual(ref);
  });
});
