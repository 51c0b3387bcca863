/**
 * Core benchmark: durable in-process appends next to raw RocksDB batch writes of the same bytes, in the
 * same run. Prints figures; never pass/fail. Run: `npm run bench` (BENCH_SCALE=0.1 for a quick pass).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { verifyInclusion } from '../src/core/merkle/index.js';
import type { WriteOp } from '../src/storage/engine.js';
import { MemoryEngine } from '../src/storage/memory/memory-engine.js';
import { RocksDbEngine } from '../src/storage/rocksdb/rocksdb-engine.js';
import { EventStore, eventInclusionProof, verifyAggregate } from '../src/store/index.js';
import type { AppendRequest } from '../src/store/types.js';

const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const n = (x: number) => Math.max(1, Math.round(x * SCALE));
const who = { issuedBy: { group: 'bench', user: 'bench' } };
const payload = { name: 'Jane Doe', status: 'active', ward: '3', note: 'x'.repeat(64) };
const req = (id: string): AppendRequest => ({
  aggregate_type: 'patient',
  aggregate_id: id,
  event_type: 'patient-updated',
  payload,
});

/** Accepts writes and keeps nothing: what is left is the cost of the append path itself. */
class DiscardEngine extends MemoryEngine {
  protected override async _write(): Promise<void> {}
}

const rows: Array<[string, string]> = [];
const report = (name: string, value: string) => {
  rows.push([name, value]);
  console.log(`${name.padEnd(58)} ${value}`);
};
const rate = (count: number, ms: number) => `${Math.round((count / ms) * 1000).toLocaleString('en-US')} /s`;

async function withStore<T>(fn: (store: EventStore, dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'edbx-bench-'));
  const store = await EventStore.open({ engine: new RocksDbEngine(dir) });
  try {
    return await fn(store, dir);
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function rawBaseline(count: number, batchSize: number, valueBytes: number): Promise<number> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'edbx-raw-'));
  const engine = new RocksDbEngine(dir);
  await engine.open();
  const value = Buffer.alloc(valueBytes, 7);
  const t0 = performance.now();
  for (let i = 0; i < count; i += batchSize) {
    const ops: WriteOp[] = [];
    for (let j = i; j < Math.min(count, i + batchSize); j++) {
      const key = Buffer.alloc(16);
      key.writeUInt32BE(j, 12);
      ops.push({ type: 'put', space: 'main', key, value });
    }
    await engine.write(ops, { sync: true });
  }
  const ms = performance.now() - t0;
  await engine.close();
  await rm(dir, { recursive: true, force: true });
  return ms;
}

async function main() {
  console.log(
    `EventDBX core benchmark (scale ${SCALE}, node ${process.version}, ${os.cpus().length} cpus)\n`,
  );

  // Bytes written per event, measured, so the raw baseline writes the same volume.
  const bytesPerEvent = await withStore(async (store) => {
    const e = await store.append(req('size'), who);
    return Buffer.byteLength(JSON.stringify(e)) * 2 + 200;
  });

  // 1. sequential durable appends (one fsync each) vs raw single-put sync batches
  {
    const count = n(2000);
    const ms = await withStore(async (store) => {
      const t0 = performance.now();
      for (let i = 0; i < count; i++) await store.append(req(`s${i % 100}`), who);
      return performance.now() - t0;
    });
    report('sequential durable appends', rate(count, ms));
    report(
      '  raw RocksDB sync batch of 1 (same bytes)',
      rate(count, await rawBaseline(count, 1, bytesPerEvent)),
    );
  }

  // 2. batches of 100 events (appendMany, one fsync per batch)
  {
    const count = n(100_000);
    const ms = await withStore(async (store) => {
      const t0 = performance.now();
      for (let i = 0; i < count; i += 100) {
        await store.appendMany(
          Array.from({ length: 100 }, (_, j) => req(`b${(i + j) % 1000}`)),
          who,
        );
      }
      return performance.now() - t0;
    });
    report('durable appends in batches of 100', rate(count, ms));
    report(
      '  raw RocksDB sync batches of 100 (same bytes)',
      rate(count, await rawBaseline(count, 100, bytesPerEvent)),
    );
  }

  // 3. 64 concurrent appenders through group commit, next to the same load on an engine that stores
  // nothing: the ceiling the append path's own JavaScript sets on this machine.
  {
    const count = n(200_000);
    const load = async (store: EventStore) => {
      let next = 0;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: 64 }, async (_, w) => {
          while (next++ < count) await store.append(req(`c${w}-${next % 50}`), who);
        }),
      );
      return { ms: performance.now() - t0, batches: store.writerStats.batches };
    };
    const { ms, batches } = await withStore(load);
    report(
      'durable appends, 64 concurrent appenders (group commit)',
      `${rate(count, ms)} (${(count / batches).toFixed(1)} events/fsync)`,
    );
    const discard = await EventStore.open({ engine: new DiscardEngine() });
    const ceiling = await load(discard);
    await discard.close();
    report('  same load, engine that stores nothing (JS ceiling)', rate(count, ceiling.ms));
  }

  // 4. append latency at stream length 10 vs 1,000,000, and replay/verify/proof. Both lengths are
  // sampled in the same store at the same time, alternately, so that background compaction of the
  // million events written just before weighs on both alike: each short sample appends the 11th
  // event of its own aggregate, each long sample the next event of the long one.
  await withStore(async (store) => {
    const samples = 500;
    const long = n(1_000_000);
    for (let i = 0; i < long; i += 1000) {
      await store.appendMany(
        Array.from({ length: Math.min(1000, long - i) }, () => req('long')),
        who,
      );
    }
    const shortIds = Array.from({ length: samples }, (_, i) => `short-${i}`);
    for (let v = 0; v < 10; v++) await store.appendMany(shortIds.map(req), who);
    const timed = async (id: string) => {
      const t0 = performance.now();
      await store.append(req(id), who);
      return performance.now() - t0;
    };
    let at10 = 0;
    let atLong = 0;
    for (const id of shortIds) {
      at10 += await timed(id);
      atLong += await timed('long');
    }
    at10 /= samples;
    atLong /= samples;
    report(`append latency at stream length 10`, `${(at10 * 1000).toFixed(0)} µs`);
    report(
      `append latency at stream length ${long.toLocaleString('en-US')}`,
      `${(atLong * 1000).toFixed(0)} µs (${(atLong / at10).toFixed(2)}x)`,
    );

    const vCount = n(100_000);
    for (let i = 0; i < vCount; i += 1000) {
      await store.appendMany(
        Array.from({ length: Math.min(1000, vCount - i) }, () => req('verify-me')),
        who,
      );
    }
    let t0 = performance.now();
    const events = await store.events('patient', 'verify-me');
    report('replay (read + decode) events', rate(events.length, performance.now() - t0));
    // Once on the calling thread, then cut into segments on the worker threads (the store's default).
    const oneThread = await EventStore.open({ engine: store.engine, verification: { threads: 0 } });
    t0 = performance.now();
    let r = await verifyAggregate(oneThread, 'patient', 'verify-me');
    report(
      `full verify of a ${vCount.toLocaleString('en-US')}-event aggregate, one thread`,
      `${(performance.now() - t0).toFixed(0)} ms (ok=${r.ok})`,
    );
    await verifyAggregate(store, 'patient', 'verify-me'); // starts the workers
    t0 = performance.now();
    r = await verifyAggregate(store, 'patient', 'verify-me');
    report(
      `  same, on ${store.verifyWorkers()?.pool.size ?? 0} worker threads`,
      `${(performance.now() - t0).toFixed(0)} ms (ok=${r.ok})`,
    );
    const proofs = 200;
    t0 = performance.now();
    for (let i = 0; i < proofs; i++) {
      const p = await eventInclusionProof(store, 'patient', 'long', 1 + ((i * 7919) % long));
      verifyInclusion(
        Buffer.from(p.leaf_hash, 'hex'),
        p.leaf_index,
        p.tree_size,
        p.audit_path.map((h) => Buffer.from(h, 'hex')),
        Buffer.from(p.root, 'hex'),
      );
    }
    report(
      `inclusion proof (generate + verify) in a ${long.toLocaleString('en-US')}-event tree`,
      `${((performance.now() - t0) / proofs).toFixed(3)} ms`,
    );
  });
}

async function memoryBound() {
  // Touch many distinct aggregates: the state LRU (memory threshold) keeps memory bounded.
  const count = n(1_000_000);
  await withStore(async (store) => {
    const before = process.memoryUsage();
    for (let i = 0; i < count; i += 1000) {
      await store.appendMany(
        Array.from({ length: Math.min(1000, count - i) }, (_, j) => req(`m${i + j}`)),
        who,
      );
    }
    global.gc?.();
    const after = process.memoryUsage();
    const mb = (b: number) => `${(b / 1048576).toFixed(0)} MiB`;
    report(
      `memory after touching ${count.toLocaleString('en-US')} aggregates (LRU 10,000)`,
      `heap ${mb(before.heapUsed)} -> ${mb(after.heapUsed)}, rss ${mb(before.rss)} -> ${mb(after.rss)}`,
    );
  });
}

await main();
await memoryBound();
