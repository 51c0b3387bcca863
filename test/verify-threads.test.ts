/**
 * Verification of long aggregates on worker threads: the aggregate is cut into segments, each after the
 * first starting from the tree its stored Merkle nodes give. Whatever is damaged, and wherever, the
 * report must be exactly the one verifying on the calling thread gives.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AesGcmCodec } from '../src/core/crypto/codec.js';
import { RocksDbEngine } from '../src/storage/rocksdb/rocksdb-engine.js';
import { type RecordCodec, plainCodec } from '../src/store/codec.js';
import { VerifyPool } from '../src/store/verify-pool.js';
import {
  EventStore,
  archiveAggregate,
  takeSnapshot,
  verifyAggregate,
  verifyAll,
} from '../src/store/index.js';
import * as K from '../src/store/keys.js';
import { editEngine } from './helpers/engine.js';
import { expectCode } from './helpers/expect.js';
import { tempDirs } from './helpers/temp.js';

const who = { issuedBy: { group: 'audit', user: 'ana' } };
const EVENTS = 230;
/** Two threads and segments of at least 50 events: 230 events are cut at version 115. */
const CUT = 115;
const tempDir = tempDirs('edbx-vt-');

async function seeded(codec?: RecordCodec): Promise<string> {
  const dir = await tempDir();
  const store = await EventStore.open({ engine: new RocksDbEngine(dir), ...(codec ? { codec } : {}) });
  for (let v = 1; v <= EVENTS; v += 40) {
    const reqs = [];
    for (let i = v; i < Math.min(v + 40, EVENTS + 1); i++) {
      reqs.push({
        aggregate_type: 'patient',
        aggregate_id: 'long',
        event_type: 'noted',
        payload: { n: String(i), [`k${i % 7}`]: 'x' },
      });
      // Another aggregate interleaved, so ledger positions are not contiguous.
      if (i % 5 === 0)
        reqs.push({
          aggregate_type: 'patient',
          aggregate_id: 'short',
          event_type: 'noted',
          payload: { n: String(i) },
        });
    }
    await store.appendMany(reqs, who);
  }
  await store.close();
  return dir;
}

async function open(dir: string, threads: number, codec?: RecordCodec): Promise<EventStore> {
  return EventStore.open({
    engine: new RocksDbEngine(dir),
    verification: { threads, segmentEvents: 50 },
    ...(codec ? { codec } : {}),
  });
}

/** The report verifying on this thread and on two workers; both must be the same. */
async function reports(dir: string, codec?: RecordCodec) {
  const here = await open(dir, 0, codec);
  const inline = await verifyAggregate(here, 'patient', 'long');
  await here.close();
  const there = await open(dir, 2, codec);
  const threaded = await verifyAggregate(there, 'patient', 'long');
  const tasks = there.verifyWorkers()?.pool.tasks;
  await there.close();
  expect(threaded).toEqual(inline);
  return { report: threaded, tasks };
}

const edit = editEngine;

/** Alter one byte of a stored event: in its event type when it is readable, else its last byte. */
const flipEventByte = (version: number) => (e: RocksDbEngine) =>
  flip(e, K.eventKey('patient', 'long', version), (value) => {
    const at = value.indexOf('"noted"');
    return at > 0 ? at + 1 : value.length - 1;
  });

async function flip(e: RocksDbEngine, key: Buffer, where: (value: Buffer) => number): Promise<void> {
  const value = Buffer.from((await e.get('main', key))!);
  const at = where(value);
  value[at] = value[at]! ^ 0x01;
  await e.write([{ type: 'put', space: 'main', key, value }], { sync: true });
}

const last = (value: Buffer) => value.length - 1;

describe('verification on worker threads', () => {
  it('cuts a long aggregate into one segment per thread and reports what one thread reports', async () => {
    const dir = await seeded();
    const { report, tasks } = await reports(dir);
    expect(report).toMatchObject({ ok: true, version: EVENTS });
    expect(tasks).toBe(2);
  });

  it('leaves a short aggregate on the calling thread', async () => {
    const dir = await seeded();
    const store = await open(dir, 2);
    expect(await verifyAggregate(store, 'patient', 'short')).toMatchObject({ ok: true, version: 46 });
    expect(store.verifyWorkers()?.pool.tasks).toBe(0);
    await store.close();
  });

  it.each([
    ['the first segment', 7],
    ['the last event of the first segment', CUT],
    ['the first event of the second segment', CUT + 1],
    ['the second segment', 200],
    ['the last event', EVENTS],
  ])('names the first bad version when an event in %s is altered', async (_, version) => {
    const dir = await seeded();
    await edit(dir, flipEventByte(version));
    const { report } = await reports(dir);
    expect(report).toMatchObject({
      ok: false,
      first_bad_version: version,
      reason: 'event content does not match its hash',
    });
  });

  it('reports the earlier of two damaged versions, in different segments', async () => {
    const dir = await seeded();
    await edit(dir, async (e) => {
      await flipEventByte(190)(e);
      await flipEventByte(30)(e);
    });
    expect((await reports(dir)).report).toMatchObject({ ok: false, first_bad_version: 30 });
  });

  it('catches a damaged Merkle node the second segment starts from', async () => {
    // The tree before version 116 is the nodes completed at versions 64, 96, 112 and 114 (and 115).
    const dir = await seeded();
    await edit(dir, (e) => flip(e, K.nodeKey('patient', 'long', 64), last));
    expect((await reports(dir)).report).toMatchObject({
      ok: false,
      first_bad_version: 64,
      reason: 'stored Merkle nodes of version 64 do not match',
    });
  });

  it('catches a missing Merkle node the second segment starts from', async () => {
    const dir = await seeded();
    await edit(dir, (e) =>
      e.write([{ type: 'del', space: 'main', key: K.nodeKey('patient', 'long', 96) }], { sync: true }),
    );
    expect((await reports(dir)).report).toMatchObject({ ok: false, first_bad_version: 96 });
  });

  it.each([CUT, CUT + 1, EVENTS])('catches a missing event %i', async (version) => {
    const dir = await seeded();
    await edit(dir, (e) =>
      e.write([{ type: 'del', space: 'main', key: K.eventKey('patient', 'long', version) }], { sync: true }),
    );
    expect((await reports(dir)).report).toMatchObject({ ok: false, first_bad_version: version });
  });

  it('catches a ledger entry of the second segment that points elsewhere', async () => {
    const dir = await seeded();
    const store = await open(dir, 0);
    const position = (await store.event('patient', 'long', 150)).position;
    await store.close();
    await edit(dir, (e) => flip(e, K.positionKey(position), last));
    expect((await reports(dir)).report).toMatchObject({ ok: false, first_bad_version: 150 });
  });

  it('checks a snapshot in the second segment against the state the first segment ends with', async () => {
    // A field set only by the first event: the second segment cannot check it alone.
    const dir = await tempDir();
    const store = await open(dir, 0);
    const ev = (n: number) => ({
      aggregate_type: 'patient',
      aggregate_id: 'long',
      event_type: 'noted',
      payload: n === 1 ? { origin: 'ward 3', n: '1' } : { n: String(n) },
    });
    await store.appendMany(
      Array.from({ length: 200 }, (_, i) => ev(i + 1)),
      who,
    );
    await takeSnapshot(store, 'patient', 'long', who);
    await store.appendMany(
      Array.from({ length: 30 }, (_, i) => ev(201 + i)),
      who,
    );
    await store.close();
    const { report, tasks } = await reports(dir);
    expect(report).toMatchObject({ ok: true, version: 230 });
    expect(tasks).toBe(2);
    for (const state of [
      { n: '200', origin: 'ward 4' },
      { n: '200' },
      { n: '200', origin: 'ward 3', extra: 'x' },
    ]) {
      await edit(dir, async (e) => {
        const key = K.snapshotKey('patient', 'long', 200);
        const value = (await e.get('main', key))!;
        const snap = { ...JSON.parse(value.subarray(1).toString()), state };
        const forged = Buffer.concat([value.subarray(0, 1), Buffer.from(JSON.stringify(snap))]);
        await e.write([{ type: 'put', space: 'main', key, value: forged }], { sync: true });
      });
      expect((await reports(dir)).report, JSON.stringify(state)).toMatchObject({
        ok: false,
        first_bad_version: 200,
        reason: 'snapshot at version 200 differs from the replay of the events',
      });
    }
  });

  it('verifies an archived aggregate in segments from the archive keyspace', async () => {
    const dir = await seeded();
    const store = await open(dir, 0);
    await archiveAggregate(store, 'patient', 'long', who, 'closed');
    await store.close();
    expect((await reports(dir)).report).toMatchObject({ ok: true, version: EVENTS });
    await edit(dir, async (e) => {
      const key = K.eventKey('patient', 'long', 170);
      const value = Buffer.from((await e.get('archive', key))!);
      const at = value.indexOf('"noted"') + 1;
      value[at] = value[at]! ^ 0x01;
      await e.write([{ type: 'put', space: 'archive', key, value }], { sync: true });
    });
    const { report, tasks } = await reports(dir);
    expect(tasks).toBe(2);
    expect(report).toMatchObject({ ok: false, first_bad_version: 170 });
  });

  it('opens encrypted events on the workers with the store keys', async () => {
    const codec = new AesGcmCodec({ activeKeyId: 1, keys: new Map([[1, randomBytes(32)]]) });
    const dir = await seeded(codec);
    expect((await reports(dir, codec)).report).toMatchObject({ ok: true, version: EVENTS });
    await edit(dir, flipEventByte(180));
    const { report, tasks } = await reports(dir, codec);
    expect(tasks).toBe(2);
    expect(report).toMatchObject({ ok: false, first_bad_version: 180 });
    expect(report.reason).toMatch(/^integrity check failed for event patient\/long@180/);
  });

  it('verifies every aggregate and the ledger with workers as without', async () => {
    const dir = await seeded();
    const store = await open(dir, 2);
    const all = await verifyAll(store);
    await store.close();
    expect(all).toMatchObject({ ok: true, aggregates: 2, events: EVENTS + 46 });
  });

  it('verifies many short aggregates in groups on the workers, failures in aggregate order', async () => {
    const dir = await tempDir();
    const seed = await open(dir, 0);
    const ids = Array.from({ length: 120 }, (_, i) => `a-${String(i).padStart(3, '0')}`);
    for (let v = 1; v <= 3; v++) {
      await seed.appendMany(
        ids.map((id) => ({
          aggregate_type: 'order',
          aggregate_id: id,
          event_type: 'noted',
          payload: { v: String(v) },
        })),
        who,
      );
    }
    await seed.close();
    await edit(dir, async (e) => {
      for (const id of ['a-090', 'a-010']) {
        await flip(e, K.eventKey('order', id, 2), (value) => value.indexOf('"noted"') + 1);
      }
    });
    const here = await open(dir, 0);
    const inline = await verifyAll(here);
    await here.close();
    const there = await open(dir, 2);
    const progress: number[] = [];
    const threaded = await verifyAll(there, (done) => progress.push(done));
    const tasks = there.verifyWorkers()?.pool.tasks ?? 0;
    await there.close();
    expect(threaded).toEqual(inline);
    expect(threaded.failures.map((f) => [f.aggregate_id, f.first_bad_version])).toEqual([
      ['a-010', 2],
      ['a-090', 2],
    ]);
    // 360 events in groups of about 50: several tasks, progress up to every aggregate.
    expect(tasks).toBeGreaterThanOrEqual(6);
    expect(progress.at(-1)).toBe(120);
  });

  it('verifies a store page by page: every aggregate once, failures in order, progress to the total', async () => {
    const dir = await tempDir();
    const seed = await open(dir, 0);
    const ids = Array.from({ length: 2100 }, (_, i) => `c-${String(i).padStart(4, '0')}`);
    await seed.appendMany(
      ids.map((id) => ({ aggregate_type: 'cart', aggregate_id: id, event_type: 'noted', payload: { id } })),
      who,
    );
    await seed.close();
    await edit(dir, async (e) => {
      for (const id of ['c-2050', 'c-0003']) {
        await flip(e, K.eventKey('cart', id, 1), (value) => value.indexOf('"noted"') + 1);
      }
    });
    for (const threads of [0, 2]) {
      const store = await open(dir, threads);
      const progress: Array<[number, number]> = [];
      const all = await verifyAll(store, (done, total) => progress.push([done, total]));
      await store.close();
      expect(all).toMatchObject({ ok: false, aggregates: 2100, events: 2100 });
      expect(all.failures.map((f) => f.aggregate_id)).toEqual(['c-0003', 'c-2050']);
      // The count first (QA scale finding 3: nothing was said until the first group was verified).
      expect(progress[0]).toEqual([0, 2100]);
      expect(progress.at(-1)).toEqual([2100, 2100]);
    }
  });

  it('stops workers left idle, and starts them again when needed', async () => {
    const dir = await seeded();
    const store = await open(dir, 0);
    const handle = store.engine.shareHandle(async (): Promise<void> => pool.close());
    const pool = new VerifyPool(handle!, 2, 100);
    const codec = plainCodec.share!();
    const whole = [['patient', 'long'] as const];
    try {
      expect(await pool.verifyAggregates(whole, codec)).toMatchObject([{ ok: true, version: EVENTS }]);
      expect(pool.threads).toBe(1);
      for (let i = 0; i < 100 && pool.threads > 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(pool.threads).toBe(0);
      expect(await pool.verifyAggregates(whole, codec)).toMatchObject([{ ok: true, version: EVENTS }]);
      expect(pool.threads).toBe(1);
    } finally {
      await store.close();
    }
    expect(pool.closed).toBe(true);
  });

  it.each([
    ['the store', (s: EventStore) => s.close()],
    ['its engine alone', (s: EventStore) => s.engine.close()],
  ])('stops verifying when %s closes, and the database closes cleanly', async (_, close) => {
    const dir = await tempDir();
    const seed = await open(dir, 0);
    const req = { aggregate_type: 'patient', aggregate_id: 'big', event_type: 'noted', payload: { n: '1' } };
    for (let i = 0; i < 20; i++)
      await seed.appendMany(
        Array.from({ length: 1000 }, () => req),
        who,
      );
    await seed.close();
    const store = await open(dir, 2);
    const verifying = verifyAggregate(store, 'patient', 'big');
    // Handled from the start: it is meant to fail while the store closes.
    const failure = expectCode(verifying, 'EDBX_ERR_STORE_NOT_OPEN');
    while (store.verifyWorkers()?.pool.tasks !== 2) await new Promise((r) => setImmediate(r));
    const pool = store.verifyWorkers()?.pool;
    await close(store);
    // The database closed only after the workers were told to let go of it.
    expect(pool?.closed).toBe(true);
    await failure;
    // The lock was released: the data dir opens again, and verifies.
    const again = await open(dir, 2);
    expect(await verifyAggregate(again, 'patient', 'big')).toMatchObject({ ok: true, version: 20_000 });
    await again.close();
  });
});
