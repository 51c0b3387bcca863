/**
 * The storage contract: every engine must pass these. `make` returns a fresh, unopened engine and a
 * cleanup that closes it and removes whatever it left on disk.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expectCode } from '../helpers/expect.js';
import {
  prefixEnd,
  type RangeOptions,
  type Space,
  type StorageEngine,
  type WriteOp,
} from '../../src/storage/engine.js';

export type MakeEngine = () => Promise<{ engine: StorageEngine; cleanup: () => Promise<void> }>;

export interface ContractFeatures {
  /** Data survives close() + open(). The memory engine starts empty on every open. */
  readonly persistent: boolean;
}

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const hex = (k: Buffer): string => k.toString('hex');
const put = (space: Space, key: Buffer | string, value: Buffer | string): WriteOp => ({
  type: 'put',
  space,
  key: typeof key === 'string' ? b(key) : key,
  value: typeof value === 'string' ? b(value) : value,
});
/** The key of entry `i` of `fill`: `k00000`, `k00001`, … (in key order). */
const key = (i: number): Buffer => b(`k${String(i).padStart(5, '0')}`);
/** Write `n` entries `key(i)` → `v<i>` to `space`. */
const fill = (engine: StorageEngine, space: Space, n: number): Promise<void> =>
  engine.write(
    Array.from({ length: n }, (_, i) => put(space, key(i), `v${i}`)),
    { sync: false },
  );
const del = (space: Space, key: Buffer | string): WriteOp => ({
  type: 'del',
  space,
  key: typeof key === 'string' ? b(key) : key,
});

export async function collect(iterable: AsyncIterable<[Buffer, Buffer]>): Promise<[Buffer, Buffer][]> {
  const out: [Buffer, Buffer][] = [];
  for await (const entry of iterable) out.push(entry);
  return out;
}

/** Entries rendered as `key=value` (hex) so failures read as a diff. */
const show = (entries: readonly (readonly [Buffer, Buffer])[]): string[] =>
  entries.map(([k, v]) => `${hex(k)}=${hex(v)}`);

/** Assert that `fn` throws or rejects with the registry code. */

/** The reference model of one keyspace: a Map plus sorting on demand. */
export { expectCode };

export class ModelSpace {
  readonly #entries = new Map<string, Buffer>();

  apply(op: WriteOp): void {
    if (op.type === 'put') this.#entries.set(hex(op.key), Buffer.from(op.value));
    else this.#entries.delete(hex(op.key));
  }

  range(options: RangeOptions = {}): [Buffer, Buffer][] {
    let rows = [...this.#entries]
      .map(([k, v]): [Buffer, Buffer] => [Buffer.from(k, 'hex'), v])
      .sort(([x], [y]) => Buffer.compare(x, y))
      .filter(([k]) => {
        if (options.gte !== undefined && Buffer.compare(k, options.gte) < 0) return false;
        if (options.gt !== undefined && Buffer.compare(k, options.gt) <= 0) return false;
        if (options.lte !== undefined && Buffer.compare(k, options.lte) > 0) return false;
        if (options.lt !== undefined && Buffer.compare(k, options.lt) >= 0) return false;
        return true;
      });
    if (options.reverse === true) rows.reverse();
    if (options.limit !== undefined) rows = rows.slice(0, options.limit);
    return rows;
  }
}

export function storageContract(
  name: string,
  make: MakeEngine,
  features: ContractFeatures = { persistent: true },
): void {
  /** Run `body` against a fresh open engine, always cleaning up. */
  async function withEngine(body: (engine: StorageEngine) => Promise<void>): Promise<void> {
    const { engine, cleanup } = await make();
    try {
      await engine.open();
      await body(engine);
    } finally {
      await cleanup();
    }
  }

  describe(`storage contract: ${name}`, () => {
    it('answers undefined for missing keys from get, getMany and getManySync', () =>
      withEngine(async (engine) => {
        expect(await engine.get('main', b('nope'))).toBeUndefined();
        expect(await engine.getMany('archive', [b('x'), b('y')])).toEqual([undefined, undefined]);
        expect(engine.getManySync('main', [b('x')])).toEqual([undefined]);
        expect(await engine.getMany('main', [])).toEqual([]);
      }));

    it('reads back what it wrote, in the order asked, overwriting and deleting', () =>
      withEngine(async (engine) => {
        await engine.write([put('main', 'k1', 'v1'), put('main', 'k2', 'v2')], { sync: false });
        await engine.write([put('main', 'k1', 'v1b'), del('main', 'k2'), del('main', 'never')], {
          sync: true,
        });
        expect(await engine.get('main', b('k1'))).toEqual(b('v1b'));
        const got = await engine.getMany('main', [b('k2'), b('k1'), b('k3'), b('k1')]);
        expect(got).toEqual([undefined, b('v1b'), undefined, b('v1b')]);
        await engine.write([put('main', 'empty', Buffer.alloc(0))], { sync: false });
        expect(await engine.get('main', b('empty'))).toEqual(Buffer.alloc(0));
      }));

    it('applies a batch of puts and deletes across both keyspaces as a whole, in order', () =>
      withEngine(async (engine) => {
        await engine.write([put('main', 'agg', 'live'), put('main', 'gone', 'x')], { sync: false });
        await engine.write(
          [
            del('main', 'agg'),
            put('archive', 'agg', 'archived'),
            del('main', 'gone'),
            put('main', 'idx', '1'),
            put('archive', 'twice', 'first'),
            put('archive', 'twice', 'second'),
            put('main', 'flip', 'x'),
            del('main', 'flip'),
          ],
          { sync: true },
        );
        expect(await engine.getMany('main', [b('agg'), b('gone'), b('idx'), b('flip')])).toEqual([
          undefined,
          undefined,
          b('1'),
          undefined,
        ]);
        expect(await engine.getMany('archive', [b('agg'), b('twice')])).toEqual([b('archived'), b('second')]);
      }));

    it('rejects a whole batch when one op is invalid, writing nothing', () =>
      withEngine(async (engine) => {
        await expectCode(
          () => engine.write([put('main', 'ok', 'v'), put('main', Buffer.alloc(0), 'v')], { sync: false }),
          'EDBX_ERR_INTERNAL',
        );
        const badSpace = { type: 'put', space: 'nope', key: b('k'), value: b('v') } as unknown as WriteOp;
        await expectCode(
          () => engine.write([put('main', 'ok', 'v'), put('archive', 'ok', 'v'), badSpace], { sync: false }),
          'EDBX_ERR_INTERNAL',
        );
        expect(await engine.get('main', b('ok'))).toBeUndefined();
        expect(await engine.get('archive', b('ok'))).toBeUndefined();
      }));

    it('rejects empty keys everywhere', () =>
      withEngine(async (engine) => {
        const empty = Buffer.alloc(0);
        await expectCode(() => engine.get('main', empty), 'EDBX_ERR_INTERNAL');
        await expectCode(() => engine.getMany('main', [b('a'), empty]), 'EDBX_ERR_INTERNAL');
        await expectCode(() => engine.getManySync('main', [empty]), 'EDBX_ERR_INTERNAL');
        await expectCode(() => engine.write([del('archive', empty)], { sync: false }), 'EDBX_ERR_INTERNAL');
      }));

    it('keeps the two keyspaces isolated', () =>
      withEngine(async (engine) => {
        await engine.write(
          [put('main', 'k', 'main'), put('archive', 'k', 'archive'), put('archive', 'only', 'a')],
          {
            sync: false,
          },
        );
        expect(await engine.get('main', b('k'))).toEqual(b('main'));
        expect(await engine.get('main', b('only'))).toBeUndefined();
        expect(show(await collect(engine.range('main')))).toEqual(show([[b('k'), b('main')]]));
        await engine.write([del('archive', 'k')], { sync: false });
        expect(await engine.get('main', b('k'))).toEqual(b('main'));
        expect(show(await collect(engine.range('archive')))).toEqual(show([[b('only'), b('a')]]));
      }));

    it('never lets callers mutate stored keys or values', () =>
      withEngine(async (engine) => {
        const key = b('key');
        const value = b('value');
        await engine.write([{ type: 'put', space: 'main', key, value }], { sync: false });
        key.fill(0x21);
        value.fill(0x21);
        const got = (await engine.get('main', b('key')))!;
        expect(got).toEqual(b('value'));
        got.fill(0x22);
        engine.getManySync('main', [b('key')])[0]!.fill(0x23);
        (await engine.getMany('main', [b('key')]))[0]!.fill(0x24);
        for (const [k, v] of await collect(engine.range('main'))) {
          k.fill(0x25);
          v.fill(0x25);
        }
        expect(show(await collect(engine.range('main')))).toEqual(show([[b('key'), b('value')]]));
      }));

    it('refuses every operation before open and after close with EDBX_ERR_STORE_NOT_OPEN', async () => {
      const { engine, cleanup } = await make();
      try {
        const calls: (() => unknown)[] = [
          () => engine.get('main', b('k')),
          () => engine.getMany('main', [b('k')]),
          () => engine.getManySync('main', [b('k')]),
          () => engine.write([put('main', 'k', 'v')], { sync: false }),
          () => engine.range('main'),
        ];
        expect(engine.status).toBe('new');
        for (const call of calls) await expectCode(call, 'EDBX_ERR_STORE_NOT_OPEN');
        await engine.open();
        expect(engine.status).toBe('open');
        await engine.close();
        await engine.close();
        expect(engine.status).toBe('closed');
        for (const call of calls) await expectCode(call, 'EDBX_ERR_STORE_NOT_OPEN');
      } finally {
        await cleanup();
      }
    });

    it.skipIf(!features.persistent)('keeps data across close and open', () =>
      withEngine(async (engine) => {
        await engine.write([put('main', 'k', 'v'), put('archive', 'a', 'b')], { sync: true });
        await engine.write([put('main', 'unsynced', 'u')], { sync: false });
        await engine.close();
        await engine.open();
        expect(await engine.get('main', b('k'))).toEqual(b('v'));
        expect(await engine.get('main', b('unsynced'))).toEqual(b('u'));
        expect(await engine.get('archive', b('a'))).toEqual(b('b'));
      }),
    );

    it('returns getManySync answers equal to getMany', () =>
      withEngine(async (engine) => {
        const ops = Array.from({ length: 50 }, (_, i) => put(i % 2 ? 'main' : 'archive', `k${i}`, `v${i}`));
        await engine.write(ops, { sync: false });
        const keys = Array.from({ length: 60 }, (_, i) => b(`k${i}`));
        for (const space of ['main', 'archive'] as const) {
          expect(engine.getManySync(space, keys)).toEqual(await engine.getMany(space, keys));
        }
        expect(engine.getManySync('main', [])).toEqual([]);
      }));

    it('pins both keyspaces as of the pin: later writes are not read, even across chunks', () =>
      withEngine(async (engine) => {
        await fill(engine, 'main', 2500);
        await engine.write([put('archive', 'a1', 'x')], { sync: false });
        const pins = { main: engine.pin('main'), archive: engine.pin('archive') };
        await engine.write([del('main', key(0)), put('main', 'zz', 'late'), put('archive', 'a2', 'y')], {
          sync: true,
        });
        const read = async (space: Space) => {
          const out: [Buffer, Buffer][] = [];
          for await (const chunk of pins[space].chunks()) out.push(...chunk);
          return out;
        };
        const main = await read('main');
        expect(main).toHaveLength(2500);
        expect(main[0]).toEqual([key(0), b('v0')]);
        expect(show(await read('archive'))).toEqual(show([[b('a1'), b('x')]]));
        await pins.main.close(); // idempotent after a full read
      }));

    it('stops a pinned read between chunks once its signal is aborted', () =>
      withEngine(async (engine) => {
        await fill(engine, 'main', 2500);
        const pin = engine.pin('main');
        const stop = new AbortController();
        let chunks = 0;
        await expectCode(async () => {
          for await (const _ of pin.chunks(stop.signal)) {
            chunks++;
            stop.abort();
          }
        }, 'EDBX_ERR_CANCELLED');
        expect(chunks).toBe(1);
      }));

    describe('range', () => {
      const data = ['a', 'b', 'b\x00', 'ba', 'c', 'd\xff', 'd\xff\x00', 'e'];
      const probes = ['\x00', 'a', 'b', 'b\x00', 'bb', 'd', 'd\xff', 'e', 'z'];
      const lowers: RangeOptions[] = [{}, ...probes.flatMap((p) => [{ gte: b(p) }, { gt: b(p) }])];
      const uppers: RangeOptions[] = [{}, ...probes.flatMap((p) => [{ lte: b(p) }, { lt: b(p) }])];

      it('honours every combination of bounds, direction and limit', () =>
        withEngine(async (engine) => {
          const model = new ModelSpace();
          const ops = data.map((k, i) => put('main', k, `v${i}`));
          ops.forEach((op) => model.apply(op));
          await engine.write(ops, { sync: false });
          const mismatches: string[] = [];
          for (const lower of lowers) {
            for (const upper of uppers) {
              for (const reverse of [false, true]) {
                for (const limit of [undefined, 0, 1, 2, 100]) {
                  const options: RangeOptions = {
                    ...lower,
                    ...upper,
                    reverse,
                    ...(limit === undefined ? {} : { limit }),
                  };
                  const actual = show(await collect(engine.range('main', options)));
                  const expected = show(model.range(options));
                  if (actual.join() !== expected.join()) {
                    mismatches.push(
                      `${JSON.stringify(options)}: got ${actual.join()} want ${expected.join()}`,
                    );
                  }
                }
              }
            }
          }
          expect(mismatches).toEqual([]);
        }));

      it('applies the stricter bound when both gt and gte (or lt and lte) are given', () =>
        withEngine(async (engine) => {
          await engine.write(
            data.map((k) => put('main', k, 'v')),
            { sync: false },
          );
          const keys = async (o: RangeOptions): Promise<string[]> =>
            (await collect(engine.range('main', o))).map(([k]) => k.toString('latin1'));
          expect(await keys({ gte: b('b'), gt: b('b') })).toEqual([
            'b\x00',
            'ba',
            'c',
            'd\xff',
            'd\xff\x00',
            'e',
          ]);
          expect(await keys({ gte: b('c'), gt: b('a') })).toEqual(['c', 'd\xff', 'd\xff\x00', 'e']);
          expect(await keys({ lte: b('b'), lt: b('b') })).toEqual(['a']);
          expect(await keys({ lte: b('a'), lt: b('c'), reverse: true })).toEqual(['a']);
          expect(await keys({ gt: b('c'), lt: b('b') })).toEqual([]);
        }));

      it('selects exactly the keys with a prefix using prefixEnd', () =>
        withEngine(async (engine) => {
          const keys = [
            [0x01],
            [0x01, 0xfe],
            [0x01, 0xff],
            [0x01, 0xff, 0x00],
            [0x01, 0xff, 0xff, 0x07],
            [0x02],
            [0x02, 0x00],
          ];
          await engine.write(
            keys.map((k) => put('main', Buffer.from(k), 'v')),
            { sync: false },
          );
          const prefixed = async (prefix: number[], reverse = false): Promise<string[]> => {
            const p = Buffer.from(prefix);
            return (await collect(engine.range('main', { gte: p, lt: prefixEnd(p), reverse }))).map(([k]) =>
              hex(k),
            );
          };
          expect(await prefixed([0x01, 0xff])).toEqual(['01ff', '01ff00', '01ffff07']);
          expect(await prefixed([0x01])).toEqual(['01', '01fe', '01ff', '01ff00', '01ffff07']);
          expect(await prefixed([0x01], true)).toEqual(['01ffff07', '01ff00', '01ff', '01fe', '01']);
          expect(await prefixed([0x02])).toEqual(['02', '0200']);
          expect(await prefixed([0x03])).toEqual([]);
        }));

      it('walks more entries than one native batch, with and without a limit', () =>
        withEngine(async (engine) => {
          const n = 2500;
          await fill(engine, 'archive', n);
          const all = await collect(engine.range('archive'));
          expect(all).toHaveLength(n);
          expect(all.every(([k], i) => k.equals(key(i)))).toBe(true);
          const tail = await collect(engine.range('archive', { reverse: true, limit: 1500 }));
          expect(tail).toHaveLength(1500);
          expect(tail[0]![0]).toEqual(key(n - 1));
          expect(tail[1499]![0]).toEqual(key(n - 1500));
        }));

      it('hands over the keys (keyChunks) and the values (valueChunks) that range does, in chunks', () =>
        withEngine(async (engine) => {
          const n = 2500;
          await fill(engine, 'main', n);
          const flat = async (chunks: AsyncIterable<Buffer[]>): Promise<string[]> => {
            const out: string[] = [];
            for await (const chunk of chunks) {
              expect(chunk.length).toBeGreaterThan(0);
              out.push(...chunk.map(hex));
            }
            return out;
          };
          for (const options of [
            {},
            { gt: key(10), lte: key(2100), reverse: true, limit: 1200 },
            { limit: 0 },
          ]) {
            const entries = await collect(engine.range('main', options));
            expect(await flat(engine.keyChunks('main', options))).toEqual(entries.map(([k]) => hex(k)));
            expect(await flat(engine.valueChunks('main', options))).toEqual(entries.map(([, v]) => hex(v)));
          }
        }));

      it('is not disturbed by writes made while it iterates', () =>
        withEngine(async (engine) => {
          const n = 2500;
          await fill(engine, 'main', n);
          const seen: [Buffer, Buffer][] = [];
          let i = 0;
          for await (const entry of engine.range('main', { gte: key(0), lt: b('k99999') })) {
            seen.push(entry);
            if (i === 0) {
              // Delete everything not yet read, overwrite the rest and insert new keys inside the range.
              await engine.write(
                Array.from({ length: n }, (_, j) =>
                  j % 2 ? del('main', key(j)) : put('main', key(j), 'changed'),
                ),
                { sync: false },
              );
            }
            await engine.write([put('main', `${key(i).toString('latin1')}+`, 'new')], { sync: false });
            i++;
          }
          expect(seen).toHaveLength(n);
          expect(seen.every(([k, v], j) => k.equals(key(j)) && v.equals(b(`v${j}`)))).toBe(true);
          const after = await collect(engine.range('main'));
          expect(after).toHaveLength(n / 2 + n);
        }));

      it('can be abandoned part way without breaking later reads or close', () =>
        withEngine(async (engine) => {
          await engine.write(
            data.map((k) => put('main', k, 'v')),
            { sync: false },
          );
          for await (const [k] of engine.range('main')) {
            expect(k).toEqual(b('a'));
            break;
          }
          expect(await collect(engine.range('main'))).toHaveLength(data.length);
        }));
    });

    it('matches a reference model over random batches (property)', async () => {
      const keyArb = fc
        .array(fc.constantFrom(0x00, 0x01, 0x61, 0x7f, 0xfe, 0xff), { minLength: 1, maxLength: 3 })
        .map((bytes) => Buffer.from(bytes));
      const spaceArb = fc.constantFrom<Space>('main', 'archive');
      const opArb: fc.Arbitrary<WriteOp> = fc.oneof(
        fc
          .record({ space: spaceArb, key: keyArb, value: fc.uint8Array({ maxLength: 8 }) })
          .map(({ space, key, value }): WriteOp => ({ type: 'put', space, key, value: Buffer.from(value) })),
        fc
          .record({ space: spaceArb, key: keyArb })
          .map(({ space, key }): WriteOp => ({ type: 'del', space, key })),
      );
      const boundArb = fc.option(keyArb, { nil: undefined });
      const rangeArb = fc
        .record({
          space: spaceArb,
          gte: boundArb,
          gt: boundArb,
          lte: boundArb,
          lt: boundArb,
          reverse: fc.boolean(),
          limit: fc.option(fc.nat(12), { nil: undefined }),
        })
        .map(({ space, ...o }) => ({
          space,
          options: Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as RangeOptions,
        }));

      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.array(opArb, { minLength: 1, maxLength: 8 }), { maxLength: 12 }),
          fc.array(rangeArb, { minLength: 1, maxLength: 8 }),
          async (batches, queries) => {
            await withEngine(async (engine) => {
              const model = { main: new ModelSpace(), archive: new ModelSpace() };
              for (const batch of batches) {
                await engine.write(batch, { sync: false });
                batch.forEach((op) => model[op.space].apply(op));
              }
              for (const { space, options } of queries) {
                expect(show(await collect(engine.range(space, options)))).toEqual(
                  show(model[space].range(options)),
                );
              }
              for (const space of ['main', 'archive'] as const) {
                const everything = model[space].range();
                const keys = everything.map(([k]) => k);
                expect(show(await collect(engine.range(space)))).toEqual(show(everything));
                expect(await engine.getMany(space, [...keys, b('\x02missing')])).toEqual([
                  ...everything.map(([, v]) => v),
                  undefined,
                ]);
              }
            });
          },
        ),
        { numRuns: 40 },
      );
    });
  });
}
