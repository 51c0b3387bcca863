/**
 * The group-commit writer prepares the next batch while the previous one is being written. These tests
 * hold engine writes at a gate to check what that overlap may and may not do.
 */
import { describe, expect, it } from 'vitest';
import type { WriteOp, WriteOptions } from '../src/storage/engine.js';
import { MemoryEngine } from '../src/storage/memory/memory-engine.js';
import * as K from '../src/store/keys.js';
import { EventStore } from '../src/store/index.js';
import { expectCode } from './helpers/expect.js';

/** Once gated, holds every write until the test releases it (or fails it: then nothing is applied). */
class GatedEngine extends MemoryEngine {
  readonly gates: Array<{ release: (failure?: Error) => void }> = [];
  gated = false;

  protected override async _write(ops: readonly WriteOp[], options: WriteOptions): Promise<void> {
    if (!this.gated) return super._write(ops, options);
    const failure = await new Promise<Error | undefined>((resolve) =>
      this.gates.push({ release: (f) => resolve(f) }),
    );
    if (failure) this.faultNextWrite(failure);
    return super._write(ops, options);
  }
}

const jane = { issuedBy: { group: 'admin', user: 'jane' } };
const ev = (event_type: string, extra: object = {}) => ({
  aggregate_type: 'patient',
  aggregate_id: 'p-001',
  event_type,
  payload: { status: event_type },
  ...extra,
});

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setImmediate(r));
  expect(cond()).toBe(true);
}

async function eventKeys(engine: MemoryEngine): Promise<number> {
  let n = 0;
  const prefix = Buffer.from([K.TAG.event]);
  for await (const _ of engine.range('main', { gte: prefix, lt: Buffer.from([K.TAG.event + 1]) })) n++;
  return n;
}

describe('group-commit writer: overlapping batches', () => {
  it('prepares the next batch on the one being written, and writes it only after that one commits', async () => {
    const engine = new GatedEngine();
    const store = await EventStore.open({ engine });
    engine.gated = true;
    const validated: string[] = [];
    store.setValidator((req) => void validated.push(req.event_type));

    const first = store.append(ev('admitted', { event_id: 'e-1' }), jane);
    await until(() => engine.gates.length === 1);
    const second = store.append(ev('moved', { expected_version: 1 }), jane);
    const retry = store.append(ev('admitted', { event_id: 'e-1' }), jane);
    // The second batch is prepared (validated, version 2 taken) while the first is still unwritten...
    await until(() => validated.includes('moved'));
    // ...but not written, and nothing of either is visible yet.
    expect(engine.gates).toHaveLength(1);
    expect(store.size).toBe(0);
    expect(await store.meta('patient', 'p-001')).toBeNull();

    engine.gates[0]!.release();
    const a = await first;
    expect(a.version).toBe(1);
    await until(() => engine.gates.length === 2);
    engine.gates[1]!.release();
    const b = await second;
    expect(b.version).toBe(2);
    expect(b.position).toBe(2);
    // The retry saw the event still in flight and answered with it instead of appending it again.
    expect(await retry).toEqual(a);
    expect(store.size).toBe(2);
    expect(await eventKeys(engine)).toBe(2);
    engine.gated = false;
    await store.close();
  });

  it('refuses a batch prepared on a write that failed, and writes none of it', async () => {
    const engine = new GatedEngine();
    const store = await EventStore.open({ engine });
    engine.gated = true;
    const validated: string[] = [];
    store.setValidator((req) => void validated.push(req.event_type));

    const first = store.append(ev('admitted'), jane);
    await until(() => engine.gates.length === 1);
    const second = store.append(ev('moved', { expected_version: 1 }), jane);
    await until(() => validated.includes('moved'));

    engine.gates[0]!.release(new Error('disk full'));
    await expectCode(first, 'EDBX_ERR_STORE_IO');
    await expectCode(second, 'EDBX_ERR_STORE_IO');
    expect(engine.gates).toHaveLength(1);
    expect(await eventKeys(engine)).toBe(0);
    expect(store.size).toBe(0);
    engine.gated = false;
    await store.close();
  });

  it('a commit listener that throws neither stops the others nor the writer, and is reported', async () => {
    const store = await EventStore.open({ engine: new MemoryEngine() });
    const seen: number[] = [];
    const reported: unknown[] = [];
    store.onListenerError((e) => void reported.push(e));
    store.onCommit(() => {
      throw new Error('subscriber bug');
    });
    store.onCommit((records) => void seen.push(...records.map((r) => r.version)));
    expect((await store.append(ev('admitted'), jane)).version).toBe(1);
    expect((await store.append(ev('moved'), jane)).version).toBe(2);
    expect(seen).toEqual([1, 2]);
    expect(reported).toHaveLength(2);
    expect(String(reported[0])).toContain('subscriber bug');
    await store.close();
  });

  it('reports a failing commit listener as a process warning by default', async () => {
    const store = await EventStore.open({ engine: new MemoryEngine() });
    const warnings: Error[] = [];
    const emit = process.emitWarning;
    process.emitWarning = ((w: string | Error, o?: unknown) =>
      void warnings.push(Object.assign(new Error(String(w)), { options: o }))) as typeof process.emitWarning;
    try {
      store.onCommit(() => {
        throw new Error('subscriber bug');
      });
      await store.append(ev('admitted'), jane);
    } finally {
      process.emitWarning = emit;
      await store.close();
    }
    expect(warnings.map((w) => w.message)).toEqual(['EventDBX commit listener failed: subscriber bug']);
    expect((warnings[0] as Error & { options: unknown }).options).toEqual({ code: 'EDBX_LISTENER_FAILED' });
  });

  it('an unexpected failure after the jobs ran refuses their batch, writes nothing, and the store goes on', async () => {
    const engine = new MemoryEngine();
    let failMeta = false;
    // Sealing the aggregate meta (plaintext JSON, unlike the stored event) fails once.
    const codec = {
      seal: (plain: Buffer) => {
        if (failMeta && plain[0] === 0x7b) {
          failMeta = false;
          throw new Error('sealing failed');
        }
        return Buffer.concat([Buffer.from([0]), plain]);
      },
      open: (sealed: Buffer) => sealed.subarray(1),
    };
    const store = await EventStore.open({ engine, codec });
    failMeta = true;
    const e = await expectCode(store.append(ev('admitted'), jane), 'EDBX_ERR_INTERNAL');
    expect(e.message).toContain('sealing failed');
    expect(store.size).toBe(0);
    expect(await eventKeys(engine)).toBe(0);
    const ok = await store.append(ev('admitted'), jane);
    expect([ok.version, ok.position]).toEqual([1, 1]);
    await store.close();
  });
});
