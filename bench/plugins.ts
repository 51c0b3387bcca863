/**
 * Plugin benchmark: sustained durable appends (RocksDB, concurrent appenders) without plugins, then
 * with all seven plugins delivering (PostgreSQL, SQLite, CSV, TCP, HTTP, JSON, log). Prints the append
 * rate both ways, each plugin's lag when the appends end, and how long each took to catch up.
 * Prints figures; never pass/fail.
 *
 * Run: `npx vite-node bench/plugins.ts` (BENCH_SCALE=0.2 for a quick pass). PostgreSQL: a throwaway
 * cluster from the machine's binaries, or EVENTDBX_TEST_PG_URL. The HTTP and TCP receivers run in a
 * child process so they do not share the store's event loop.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setImmediate } from 'node:timers/promises';
import { DeliveryHost, configurePlugin, pluginStatus } from '../src/plugins/index.js';
import type { PluginInput, PluginKind, PluginLogger } from '../src/plugins/index.js';
import { RocksDbEngine } from '../src/storage/rocksdb/rocksdb-engine.js';
import { EventStore } from '../src/store/index.js';
import { startPostgres } from '../test/plugins/pg-harness.js';

const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const EVENTS = Math.max(100, Math.round(20_000 * SCALE));
const CONCURRENCY = 64;
const AGGREGATES = 1_000;
const who = { issuedBy: { group: 'bench', user: 'bench' } };

const RECEIVERS = `
const http = require('node:http'), net = require('node:net');
let httpCount = 0, tcpLines = 0;
const h = http.createServer((req, res) => { req.resume(); req.on('end', () => { httpCount++; res.end('ok'); }); });
const t = net.createServer((s) => s.on('data', (d) => { for (const b of d) if (b === 10) tcpLines++; }));
h.listen(0, '127.0.0.1', () => t.listen(0, '127.0.0.1', () =>
  process.stdout.write(JSON.stringify({ http: h.address().port, tcp: t.address().port }) + '\\n')));
`;

async function receivers(): Promise<{ child: ChildProcess; http: number; tcp: number }> {
  const child = spawn(process.execPath, ['-e', RECEIVERS], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve) =>
    child.stdout!.once('data', (d: Buffer) => resolve(d.toString())),
  );
  return { child, ...(JSON.parse(line) as { http: number; tcp: number }) };
}

const quietLogger = (): PluginLogger & { lines: number } => {
  const l = { lines: 0 } as PluginLogger & { lines: number };
  const count = () => void l.lines++;
  return Object.assign(l, {
    trace: count,
    debug: count,
    info: count,
    warn: () => undefined,
    error: () => undefined,
  });
};

/** Wall time of the appends, and this process's CPU time while they ran (less sensitive to a busy machine). */
async function appendLoad(store: EventStore): Promise<{ ms: number; cpuMs: number }> {
  let next = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < EVENTS; i = next++) {
        // Like requests arriving over the network: each append starts from the event loop, not from
        // the previous append's promise chain (which would starve every other task in the process).
        await setImmediate();
        await store.append(
          {
            aggregate_type: i % 2 ? 'patient' : 'order',
            aggregate_id: `a-${i % AGGREGATES}`,
            event_type: 'updated',
            payload: {
              seq: String(i),
              name: `name ${i}`,
              status: i % 3 ? 'active' : 'inactive',
              note: 'x'.repeat(48),
            },
          },
          who,
        );
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  return { ms: performance.now() - t0, cpuMs: (cpu.user + cpu.system) / 1000 };
}

const rate = (n: number, ms: number) => `${Math.round((n / ms) * 1000).toLocaleString('en-US')} /s`;

async function withStore<T>(fn: (store: EventStore, dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'edbx-bench-plugins-'));
  const store = await EventStore.open({ engine: new RocksDbEngine(path.join(dir, 'data')) });
  try {
    return await fn(store, dir);
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function main() {
  console.log(
    `EventDBX plugin benchmark: ${EVENTS} durable appends, ${CONCURRENCY} concurrent appenders, ${AGGREGATES} aggregates (node ${process.version}, ${os.cpus().length} cpus)\n`,
  );
  const perEvent = (cpuMs: number) => `${Math.round((cpuMs * 1000) / EVENTS)} µs CPU per append`;
  const baseline = await withStore((store) => appendLoad(store));
  console.log(
    `${'appends, no plugins'.padEnd(40)} ${rate(EVENTS, baseline.ms).padStart(9)}  ${perEvent(baseline.cpuMs)}`,
  );

  const pg = await startPostgres();
  const rx = await receivers();
  try {
    await withStore(async (store, dir) => {
      const log = quietLogger();
      const host = new DeliveryHost(store, { log });
      await host.start();
      const plugins: Array<[PluginKind, PluginInput]> = [
        ['postgres', { connection: await pg.createDatabase() }],
        ['sqlite', { path: path.join(dir, 'mirror.db') }],
        ['csv', { output_dir: path.join(dir, 'csv') }],
        ['tcp', { host: '127.0.0.1', port: rx.tcp }],
        ['http', { endpoint: `http://127.0.0.1:${rx.http}/events` }],
        ['json', { path: path.join(dir, 'events.jsonl') }],
        ['log', { level: 'info' }],
      ];
      for (const [kind, input] of plugins) await configurePlugin(store, kind, input, who);

      const { ms, cpuMs } = await appendLoad(store);
      const endedAt = performance.now();
      console.log(
        `${'appends, all seven plugins on'.padEnd(40)} ${rate(EVENTS, ms).padStart(9)}  ${perEvent(cpuMs)} (appends and delivery share the process)`,
      );
      const atEnd = await pluginStatus(store);
      console.log('\nlag when the appends ended, then time to catch up:');
      const done = new Map<string, number>();
      for (;;) {
        const s = await pluginStatus(store);
        for (const p of s.plugins)
          if (p.lag === 0 && !done.has(p.name)) done.set(p.name, performance.now() - endedAt);
        if (done.size === plugins.length) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      for (const p of atEnd.plugins) {
        const catchUp = done.get(p.name)!;
        console.log(
          `  ${p.name.padEnd(10)} lag ${String(p.lag).padStart(7)} events   caught up ${(catchUp / 1000).toFixed(2).padStart(6)} s after   ${rate(EVENTS, ms + catchUp).padStart(10)} delivered overall`,
        );
      }
      await host.stop();
    });
  } finally {
    rx.child.kill();
    await pg.destroy();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
