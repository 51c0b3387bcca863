/**
 * SDK benchmark: appends through `EventDbxClient` next to hand-written `fetch` calls sending the same
 * requests, in the same run, at 1 and 64 requests in flight. Two targets: the real server (built
 * CLI, RocksDB, fsync per batch) and a bare node:http echo in another process, where the client's
 * own cost is a larger share of each request. Rounds alternate raw/SDK; medians are reported, both of
 * throughput and of this process's CPU per append (steadier than throughput on a busy machine, and
 * exactly what the SDK adds). First, the SDK's cost without any network (a stub fetch).
 * Prints figures; never pass/fail.
 *
 *   npm run build && npx vite-node bench/client.ts      (BENCH_SCALE=0.2 for a quick pass)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { EventDbxClient } from '../src/client/index.js';
import { project, startServer } from '../test/helpers/cli.js';

const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const AGGREGATES = 1000;
const body = {
  event_type: 'patient-updated',
  payload: { name: 'Jane Doe', status: 'active', ward: '3', note: 'x'.repeat(64) },
};

type Append = (i: number) => Promise<unknown>;

function rawAppend(url: string, token: string): Append {
  return async (i) => {
    const res = await fetch(`${url}/v1/aggregates/patient/p-${i % AGGREGATES}/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (res.status !== 201) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
    return res.json();
  };
}

function sdkAppend(url: string, token: string): Append {
  const db = new EventDbxClient({ url, token });
  return (i) => db.append('patient', `p-${i % AGGREGATES}`, body);
}

interface Result {
  /** Appends per second. */
  readonly rate: number;
  /** CPU of this (client) process per append, µs: what the SDK adds, less disturbed by other load. */
  readonly cpu: number;
}

/** `total` appends with `concurrency` in flight. */
async function run(append: Append, total: number, concurrency: number): Promise<Result> {
  let next = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) await append(next++);
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  return { rate: (total / (performance.now() - t0)) * 1000, cpu: (cpu.user + cpu.system) / total };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (n: number) => `${Math.round(n).toLocaleString('en-US')} /s`.padStart(9);
const pct = (base: number, x: number) => `${(((x - base) / base) * 100).toFixed(1)} %`.padStart(7);

async function compare(target: string, url: string, token: string): Promise<void> {
  const raw = rawAppend(url, token);
  const sdk = sdkAppend(url, token);
  for (const [concurrency, count] of [
    [1, 1000],
    [64, 8000],
  ] as const) {
    const total = Math.max(100, Math.round(count * SCALE));
    await run(raw, Math.min(total, 500), concurrency); // warm-up: connections, JIT
    await run(sdk, Math.min(total, 500), concurrency);
    const r: Result[] = [];
    const s: Result[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      // Alternate the order so drift (compaction, cache) hits both sides alike.
      if (round % 2 === 0) {
        r.push(await run(raw, total, concurrency));
        s.push(await run(sdk, total, concurrency));
      } else {
        s.push(await run(sdk, total, concurrency));
        r.push(await run(raw, total, concurrency));
      }
    }
    const rate = (xs: Result[]) => median(xs.map((x) => x.rate));
    const cpu = (xs: Result[]) => median(xs.map((x) => x.cpu));
    console.log(
      `${target.padEnd(12)} ${String(concurrency).padStart(2)} in flight` +
        `   throughput raw ${fmt(rate(r))}  SDK ${fmt(rate(s))} (${pct(rate(r), rate(s))})` +
        `   client CPU/append raw ${cpu(r).toFixed(0).padStart(4)} µs  SDK ${cpu(s).toFixed(0).padStart(4)} µs (${pct(cpu(r), cpu(s))})` +
        `   [${ROUNDS} rounds × ${total}, medians]`,
    );
  }
}

/** A bare node:http server in another process answering appends with a fixed record. */
async function startEcho(): Promise<{ url: string; child: ChildProcess }> {
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
  const record = JSON.stringify({
    aggregate_type: 'patient',
    aggregate_id: 'p-1',
    ...body,
    metadata: { event_id: 'e', created_at: new Date().toISOString(), issued_by: { group: 'g', user: 'u' } },
    version: 1,
    position: 1,
    hash: '0'.repeat(64),
    merkle_root: '0'.repeat(64),
  });
  const source = `
    const http = require('node:http');
    http.createServer((req, res) => {
      req.resume();
      req.on('end', () => { res.writeHead(201, { 'content-type': 'application/json' }); res.end(${JSON.stringify(record)}); });
    }).listen(${port}, '127.0.0.1', () => console.log('ready'));`;
  const child = spawn(process.execPath, ['-e', source], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((r) => child.stdout!.once('data', () => r()));
  return { url: `http://127.0.0.1:${port}`, child };
}

/**
 * The SDK's own CPU per append, without a network: both sides call the same stub `fetch` that returns
 * a ready response, so the difference is what the SDK adds (URL, headers, retry loop, parsing).
 */
async function clientCost(): Promise<void> {
  const record = JSON.stringify({ aggregate_type: 'patient', aggregate_id: 'p-1', ...body, version: 1 });
  const stub: typeof fetch = async () =>
    new Response(record, { status: 201, headers: { 'content-type': 'application/json' } });
  const url = 'http://127.0.0.1:7070';
  const raw: Append = async (i) => {
    const res = await stub(`${url}/v1/aggregates/patient/p-${i % AGGREGATES}/events`, {
      method: 'POST',
      headers: { authorization: 'Bearer t', 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return res.json();
  };
  const variants: Array<[string, Append]> = [
    ['raw fetch', raw],
    ['SDK', sdkWith({ fetch: stub })],
    ['SDK, timeoutMs set', sdkWith({ fetch: stub, timeoutMs: 30_000 })],
  ];
  const n = Math.max(1000, Math.round(50_000 * SCALE));
  for (const [, f] of variants) await run(f, n / 10, 1);
  const us = (f: Append) => run(f, n, 1).then((r) => 1e6 / r.rate);
  const results: number[][] = variants.map(() => []);
  for (let round = 0; round < ROUNDS; round++)
    for (const [i, [, f]] of variants.entries()) results[i]!.push(await us(f));
  const base = median(results[0]!);
  for (const [i, [name]] of variants.entries()) {
    const m = median(results[i]!);
    console.log(
      `${'no network'.padEnd(12)} ${name.padEnd(18)} ${m.toFixed(1).padStart(6)} µs/append` +
        (i === 0 ? '' : `   (+${(m - base).toFixed(1)} µs over raw fetch)`),
    );
  }
}

function sdkWith(o: { fetch: typeof fetch; timeoutMs?: number }): Append {
  const db = new EventDbxClient({ url: 'http://127.0.0.1:7070', token: 't', ...o });
  return (i) => db.append('patient', `p-${i % AGGREGATES}`, body);
}

async function main(): Promise<void> {
  console.log(`SDK vs raw fetch, appends (node ${process.version}, BENCH_SCALE=${SCALE})`);
  await clientCost();
  const p = await project();
  const server = await startServer(p, ['--restrict=false']);
  const echo = await startEcho();
  try {
    await compare('server', server.url, server.adminToken);
    await compare('echo', echo.url, 'edbx_' + 'x'.repeat(43));
  } finally {
    echo.child.kill();
    await server.stop();
    await p.cleanup();
  }
}

await main();
