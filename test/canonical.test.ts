import canonicalize from 'canonicalize';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../src/core/canonical.js';
import { appendLeafJson } from '../src/core/event.js';

describe('canonical JSON (RFC 8785)', () => {
  it('matches the reference implementation on records of strings, integers and nested objects', () => {
    const value = fc.letrec((tie) => ({
      tree: fc.oneof({ depthSize: 'small' }, tie('leaf'), tie('obj'), tie('arr')),
      leaf: fc.oneof(
        fc.string({ unit: 'grapheme' }),
        fc.string(),
        fc.maxSafeInteger(),
        fc.boolean(),
        fc.constant(null),
      ),
      obj: fc.dictionary(
        fc.oneof(fc.string({ unit: 'grapheme' }), fc.nat({ max: 30 }).map(String)),
        tie('tree'),
        { maxKeys: 5 },
      ),
      arr: fc.array(tie('tree'), { maxLength: 4 }),
    })).tree;
    fc.assert(
      fc.property(value, (v) => {
        expect(canonicalJson(v)).toBe(canonicalize(v));
      }),
      { numRuns: 2000 },
    );
  });

  it('sorts keys by UTF-16 code units and escapes as JSON.stringify does', () => {
    expect(canonicalJson({ b: 1, a: 'x', '\u20ac': 2, '\ud83d\ude00': 3, A: '\u2028' })).toBe(
      '{"A":"\u2028","a":"x","b":1,"\u20ac":2,"\ud83d\ude00":3}',
    );
    expect(() => canonicalJson({ a: Number.NaN })).toThrow(/non-finite/);
    // Array-index-like keys sort as text in RFC 8785, not numerically as JavaScript orders them.
    expect(canonicalJson({ '10': 'a', '9': 'b', x: { '2': 1, '10': 2 } })).toBe(
      '{"10":"a","9":"b","x":{"10":2,"2":1}}',
    );
    expect(canonicalJson({ __proto__x: 1, b: [{ z: 1, a: 2 }] })).toBe(
      '{"__proto__x":1,"b":[{"a":2,"z":1}]}',
    );
  });

  it('writes the leaf JSON of an appended record exactly as the reference canonicalises it', () => {
    const text = fc.oneof(fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' }), fc.string());
    const record = fc.record({
      aggregate_type: text,
      aggregate_id: text,
      event_type: text,
      payload: fc.dictionary(fc.oneof(text, fc.nat({ max: 30 }).map(String)), text, { maxKeys: 6 }),
      metadata: fc.record({
        event_id: text,
        created_at: text,
        // With the token id (writes made with a token) and without (host writes, older events).
        issued_by: fc.record({ group: text, user: text, token: text }, { requiredKeys: ['group', 'user'] }),
      }),
      version: fc.maxSafeNat(),
      position: fc.maxSafeNat(),
    });
    fc.assert(
      fc.property(record, (r) => {
        expect(appendLeafJson(r)).toBe(canonicalize(r));
      }),
      { numRuns: 2000 },
    );
  });
});
