/** The control socket writes large answers in pieces: together they must be exactly JSON.stringify's text. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { jsonPieces } from '../../src/server/json-pieces.js';

const whole = (v: unknown, run: number) => [...jsonPieces(v, run)].join('');

describe('jsonPieces', () => {
  it('joins to the text JSON.stringify writes, for any JSON value and run length (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.integer({ min: 1, max: 4 }), (v, run) => {
        expect(whole(v, run)).toBe(JSON.stringify(v));
      }),
      { numRuns: 500 },
    );
  });

  it('leaves out what JSON leaves out and calls toJSON like JSON.stringify', () => {
    const v = {
      a: undefined,
      b: [undefined, () => 1, 3, new Date(0)],
      c: () => 1,
      d: { at: new Date(0), n: null },
      e: Object.assign(Object.create(null), { x: 1 }),
    };
    expect(whole(v, 1)).toBe(JSON.stringify(v));
  });

  it('cuts a long array into runs of elements', () => {
    const pieces = [...jsonPieces({ events: Array.from({ length: 2500 }, (_, i) => ({ i })) }, 1000)];
    expect(pieces.filter((p) => p.includes('"i":')).map((p) => p.split('"i":').length - 1)).toEqual([
      1000, 1000, 500,
    ]);
  });
});
