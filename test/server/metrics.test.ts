/**
 * `_total` metrics are Prometheus counters (QA item 7: appends and fsync batches were gauges), and
 * /metrics has what an operator alerts on (qa-ops #4): whether the store takes writes, how long each
 * durable batch takes, what each plugin delivered and when, the build, and the standard process names.
 * An event stream is counted, and written to the debug access log, when it ends (qa-today2 #3); a
 * request whose client went away before its answer, as 499.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdir, stat, truncate } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { err } from '../../src/core/errors.js';
import { configurePlugin } from '../../src/plugins/index.js';
import { Metrics } from '../../src/server/metrics.js';
import type { WriteOp, WriteOptions } from '../../src/storage/engine.js';
import { RocksDbEngine } from '../../src/storage/rocksdb/rocksdb-engine.js';
import { STORAGE_LAYOUT } from '../../src/store/index.js';
import { openDataDir } from '../../src/store/secure.js';
import { streamFeature } from '../../src/server/routes/stream.js';
import { createToken, revokeToken } from '../../src/store/tokens.js';
import { type TestServer, get, post, testServer } from '../helpers/http.js';
import { tempDirs } from '../helpers/temp.js';
import { caughtUp, jane, startHost } from '../plugins/fixtures.js';

const tempDir = tempDirs('edbx-metrics-');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const event = { event_type: 'a', payload: {} };

/** The value of one series (exact name and labels) in a scrape, or undefined when it is absent. */
function series(text: string, nameAndLabels: string): number | undefined {
  const escaped = nameAndLabels.replace(/[{}()[\].*+?^$|\\]/g, '\\$&');
  const m = new RegExp(`^${escaped} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

/** RocksDB whose writes can be made slow, or fail once (a full disk). */
class Disk extends RocksDbEngine {
  delayMs = 0;
  fail: Error | undefined;
  protected override async _write(ops: readonly WriteOp[], options: WriteOptions): Promise<void> {
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    const fail = this.fail;
    this.fail = undefined;
    if (fail) throw fail;
    return super._write(ops, options);
  }
}

describe('/metrics', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await testServer();
  });
  afterAll(() => s?.close());

  it('declares appends and fsync batches as counters with the writer totals', async () => {
    for (let i = 0; i < 3; i++)
      expect(
        (await post(s, '/v1/aggregates/patient/p-1/events', { event_type: 'a', payload: {} })).status,
      ).toBe(201);
    const text = (await get(s, '/metrics')).body as string;
    for (const name of ['eventdbx_appends_total', 'eventdbx_fsync_batches_total']) {
      expect(text).toContain(`# TYPE ${name} counter`);
    }
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    expect(value('eventdbx_appends_total')).toBe(s.store.writerStats.events);
    expect(value('eventdbx_fsync_batches_total')).toBe(s.store.writerStats.batches);
    expect(value('eventdbx_appends_total')).toBeGreaterThanOrEqual(3);
  });

  it('counts and times requests by method, route and status, unmatched paths and refusals included', async () => {
    await post(s, '/v1/aggregates/patient/p-1/events', { event_type: 'a', payload: {} });
    const before = await get(s, '/metrics');
    const count = (text: string, labels: string) =>
      Number(new RegExp(`^eventdbx_http_requests_total\\{${labels}\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
    const state = 'method="GET",route="/v1/aggregates/:aggregate_type/:aggregate_id",status="200"';
    const head = 'method="HEAD",route="/v1/aggregates",status="401"';
    const unmatched = 'method="GET",route="unmatched",status="404"';
    expect((await get(s, '/v1/aggregates/patient/p-1')).status).toBe(200);
    expect((await get(s, '/v1/aggregates/patient/p-1')).status).toBe(200);
    // HEAD routes are protected like their GET: no token, 401.
    expect((await fetch(`${s.url}/v1/aggregates`, { method: 'HEAD' })).status).toBe(401);
    expect((await get(s, '/v1/no-such-thing')).status).toBe(404);
    const text = (await get(s, '/metrics')).body as string;
    expect(count(text, state) - count(before.body as string, state)).toBe(2);
    expect(count(text, head) - count(before.body as string, head)).toBe(1);
    expect(count(text, unmatched) - count(before.body as string, unmatched)).toBe(1);
    expect(text).toMatch(
      /^eventdbx_http_request_duration_seconds_count\{method="GET",route="\/v1\/aggregates\/:aggregate_type\/:aggregate_id"\} [1-9]/m,
    );
  });

  it("shows each plugin's lag, dead letters and state", async () => {
    const out = path.join(os.tmpdir(), `edbx-metrics-${process.pid}.jsonl`);
    await configurePlugin(s.store, 'json', { path: out }, { issuedBy: { group: 'admin', user: 'ops' } });
    const text = (await get(s, '/metrics')).body as string;
    for (const [name, type] of [
      ['eventdbx_plugin_lag', 'gauge'],
      ['eventdbx_plugin_dead_letters', 'gauge'],
      ['eventdbx_plugin_state', 'gauge'],
    ])
      expect(text).toContain(`# TYPE ${name} ${type}`);
    // No delivery loop runs in this in-process server: every position is still to deliver.
    expect(text).toMatch(
      new RegExp(`^eventdbx_plugin_lag\\{plugin="json",kind="json"\\} ${s.store.size}$`, 'm'),
    );
    expect(text).toMatch(/^eventdbx_plugin_dead_letters\{plugin="json",kind="json"\} 0$/m);
    expect(text).toMatch(/^eventdbx_plugin_state\{plugin="json",kind="json",state="not running"\} 1$/m);
    // Nothing delivered yet: the counter is 0 and there is no last delivery to show.
    expect(text).toContain('# TYPE eventdbx_plugin_delivered_total counter');
    expect(series(text, 'eventdbx_plugin_delivered_total{plugin="json",kind="json"}')).toBe(0);
    expect(text).toContain('# TYPE eventdbx_plugin_last_delivery_timestamp_seconds gauge');
    expect(text).not.toMatch(/^eventdbx_plugin_last_delivery_timestamp_seconds\{/m);
  });

  it('names the process metrics as the standard dashboards do (process_*, nodejs_*)', async () => {
    const text = (await get(s, '/metrics')).body as string;
    expect(text).toContain('# TYPE process_cpu_seconds_total counter');
    expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes \d+/m);
    expect(text).not.toContain('eventdbx_process_');
  });

  it("gives the server's version and storage layout in eventdbx_build_info", async () => {
    const text = (await get(s, '/metrics')).body as string;
    expect(text).toContain('# TYPE eventdbx_build_info gauge');
    expect(series(text, `eventdbx_build_info{version="test",layout="${STORAGE_LAYOUT}"}`)).toBe(1);
  });

  it('is scraped with a read-only token scoped to an aggregate type that holds nothing', async () => {
    const { token } = await createToken(
      s.store,
      { group: 'monitoring', user: 'prometheus', readOnly: true, scopes: ['prometheus'] },
      jane,
    );
    const res = await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('eventdbx_store_writable 1');
  });
});

describe('/metrics on RocksDB: writes and their durability', () => {
  it('times each durable batch once, whatever its number of events', async () => {
    const engine = new Disk(path.join(await tempDir(), 'data'));
    const s = await testServer({ engine });
    try {
      const before = (await get(s, '/metrics')).body as string;
      expect(before).toContain('# TYPE eventdbx_fsync_duration_seconds histogram');
      const count = (text: string) => series(text, 'eventdbx_fsync_duration_seconds_count') ?? NaN;
      const batches = s.store.writerStats.batches;
      // One transaction of 20 events is one batch, one fsync, one observation.
      const events = Array.from({ length: 20 }, (_, i) => ({
        aggregate_type: 'patient',
        aggregate_id: `p-${i}`,
        ...event,
      }));
      expect((await post(s, '/v1/transactions', { events })).status).toBe(201);
      // A slow disk shows in the batch's duration.
      engine.delayMs = 120;
      expect((await post(s, '/v1/aggregates/patient/p-1/events', event)).status).toBe(201);
      const text = (await get(s, '/metrics')).body as string;
      expect(s.store.writerStats.batches - batches).toBe(2);
      expect(count(text) - count(before)).toBe(2);
      expect(count(text)).toBe(s.store.writerStats.batches);
      expect(series(text, 'eventdbx_fsync_duration_seconds_sum')).toBeGreaterThanOrEqual(0.1);
      const le = (b: string) => series(text, `eventdbx_fsync_duration_seconds_bucket{le="${b}"}`) ?? NaN;
      // The slow batch is above 0.1 s, every other one below it.
      expect(le('0.1')).toBe(count(text) - 1);
      expect(le('+Inf')).toBe(count(text));
    } finally {
      await s.close();
    }
  });

  it('says eventdbx_store_writable 0 once a failed write makes the store refuse writes', async () => {
    const engine = new Disk(path.join(await tempDir(), 'data'));
    const s = await testServer({ engine });
    try {
      expect((await post(s, '/v1/aggregates/patient/p-1/events', event)).status).toBe(201);
      const ok = (await get(s, '/metrics')).body as string;
      expect(ok).toContain('# TYPE eventdbx_store_writable gauge');
      expect(series(ok, 'eventdbx_store_writable')).toBe(1);
      const timed = series(ok, 'eventdbx_fsync_duration_seconds_count');

      engine.fail = err('EDBX_ERR_STORE_IO', { reason: 'No space left on device' });
      expect((await post(s, '/v1/aggregates/patient/p-1/events', event)).status).toBe(500);
      const failed = (await get(s, '/metrics')).body as string;
      expect(series(failed, 'eventdbx_store_writable')).toBe(0);
      // A failed write is not timed as a durable batch.
      expect(series(failed, 'eventdbx_fsync_duration_seconds_count')).toBe(timed);
      expect((await fetch(`${s.url}/health`)).status).toBe(503);
    } finally {
      await s.close();
    }
  });

  it('says eventdbx_store_writable 0 for a store that lost acknowledged events', async () => {
    const dataDir = path.join(await tempDir(), 'data');
    const open = () =>
      openDataDir({
        dataDir,
        masterKey: 'm-master',
        dek: 'm-dek',
        memoryThreshold: 100,
        maxPayloadBytes: 256 * 1024,
        verifyThreads: 0,
      });
    let secure = await open();
    for (let i = 1; i <= 10; i++)
      await secure.store.append({ aggregate_type: 'patient', aggregate_id: `p-${i}`, ...event }, jane);
    await secure.store.close();
    // The newest write-ahead log cut short: RocksDB drops the newest acknowledged events.
    const wal = (await readdir(dataDir))
      .filter((f) => /^\d+\.log$/.test(f))
      .sort()
      .at(-1)!;
    await truncate(path.join(dataDir, wal), (await stat(path.join(dataDir, wal))).size - 300);
    secure = await open();
    try {
      expect(secure.store.acknowledgedLoss).toBeDefined();
      const metrics = new Metrics(secure.store);
      expect(series(await metrics.registry.metrics(), 'eventdbx_store_writable')).toBe(0);
      metrics.close();
    } finally {
      await secure.store.close();
    }
  });
});

describe('/metrics of a delivering plugin', () => {
  it('counts what each plugin delivered and says when it last delivered', async () => {
    const dir = await tempDir();
    const s = await testServer({ engine: new RocksDbEngine(path.join(dir, 'data')) });
    await configurePlugin(s.store, 'json', { path: path.join(dir, 'out.jsonl') }, jane);
    const host = await startHost(s.store);
    try {
      const start = Date.now() / 1000;
      for (let i = 0; i < 5; i++)
        expect((await post(s, `/v1/aggregates/patient/p-${i}/events`, event)).status).toBe(201);
      await caughtUp(s.store, 'json');
      const text = (await get(s, '/metrics')).body as string;
      // The token-generated audit entry is never delivered: only the 5 events.
      expect(series(text, 'eventdbx_plugin_delivered_total{plugin="json",kind="json"}')).toBe(5);
      const last = series(text, 'eventdbx_plugin_last_delivery_timestamp_seconds{plugin="json",kind="json"}');
      expect(last).toBeGreaterThanOrEqual(Math.floor(start));
      expect(last).toBeLessThanOrEqual(Date.now() / 1000);
      expect(series(text, 'eventdbx_plugin_lag{plugin="json",kind="json"}')).toBe(0);
    } finally {
      await host.stop();
      await s.close();
    }
  });
});

describe('the access log and /metrics name unknown paths alike (qa-today2 #7)', () => {
  it('names an unknown path `unmatched` in the access log, as /metrics does', async () => {
    const s = await testServer({ logs: true });
    try {
      expect((await get(s, '/v1/no-such-thing')).status).toBe(404);
      const line = s.logs.filter((l) => l.msg === 'request' && l.status === 404).at(-1);
      expect(line).toMatchObject({ method: 'GET', route: 'unmatched' });
    } finally {
      await s.close();
    }
  });
});

describe('an event stream in the access log and /metrics (qa-today2 #3)', () => {
  let s: TestServer;
  let stopped = false;
  beforeAll(async () => {
    s = await testServer({
      logs: true,
      extraRoutes: [(app, ctx) => streamFeature.routes!(app, ctx, undefined as never)],
    });
  });
  afterAll(() => (stopped ? undefined : s?.close()));

  const streamed = 'eventdbx_http_requests_total{method="GET",route="/v1/events/stream",status="200"}';
  const timed = 'eventdbx_http_request_duration_seconds_count{method="GET",route="/v1/events/stream"}';
  const scrape = async () => {
    const text = (await get(s, '/metrics')).body as string;
    return { count: series(text, streamed) ?? 0, timed: series(text, timed) ?? 0 };
  };
  /** A stream opened with a token of its own (its id tells its access line apart), first block read. */
  const open = async () => {
    const { id, token } = await createToken(s.store, { group: 'app', user: 'projector' }, jane);
    const ctl = new AbortController();
    const res = await fetch(`${s.url}/v1/events/stream?from=1`, {
      headers: { authorization: `Bearer ${token}` },
      signal: ctl.signal,
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    await reader.read();
    const rest = (async () => {
      while (!(await reader.read()).done);
    })().catch(() => undefined);
    return { id, ctl, rest };
  };
  const accessLines = (id: string) => s.logs.filter((l) => l.msg === 'request' && l.token_id === id);
  const ended = async (id: string) => {
    for (const until = Date.now() + 5_000; accessLines(id).length === 0; await sleep(20))
      if (Date.now() > until) throw new Error(`no access line for the stream of ${id}`);
    await sleep(50); // time for a second line, if there were one
    const found = accessLines(id);
    expect(found).toEqual([
      expect.objectContaining({
        level: 20,
        method: 'GET',
        route: '/v1/events/stream',
        status: 200,
        ip: '127.0.0.1',
      }),
    ]);
    return found[0]!.duration_ms as number;
  };

  it('logs and counts a stream once, when its client goes, with how long it lasted', async () => {
    const before = await scrape();
    const { id, ctl } = await open();
    await sleep(150);
    ctl.abort();
    expect(await ended(id)).toBeGreaterThanOrEqual(140);
    expect((await scrape()).count - before.count).toBe(1);
  });

  it('logs and counts a stream once when its token is revoked', async () => {
    const before = await scrape();
    const { id, rest } = await open();
    await revokeToken(s.store, id, jane);
    await s.store.append({ aggregate_type: 'patient', aggregate_id: 'p-9', ...event }, jane);
    await rest; // the stream ends (event: error) before the new event is sent
    await ended(id);
    // Counted, not timed: how long a stream stays open is no request latency.
    expect(await scrape()).toEqual({ count: before.count + 1, timed: before.timed });
  });

  it('logs a stream once when the server stops', async () => {
    const { id, rest } = await open();
    stopped = true;
    await s.close();
    await rest;
    await ended(id);
  });
});

describe('a request whose client goes away before its answer (status 499)', () => {
  it('is logged and counted as 499, not timed, and a write it made stays made', async () => {
    const engine = new Disk(path.join(await tempDir(), 'data'));
    const s = await testServer({ engine, logs: true });
    try {
      const route = '/v1/aggregates/:aggregate_type/:aggregate_id/events';
      const gone = `eventdbx_http_requests_total{method="POST",route="${route}",status="499"}`;
      const timed = `eventdbx_http_request_duration_seconds_count{method="POST",route="${route}"}`;
      expect((await post(s, '/v1/aggregates/patient/p-1/events', event)).status).toBe(201);
      const before = (await get(s, '/metrics')).body as string;
      engine.delayMs = 300;
      const req = http.request(`${s.url}/v1/aggregates/patient/p-1/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' },
      });
      req.on('error', () => undefined);
      req.end(JSON.stringify(event));
      await sleep(100);
      req.destroy();
      const lines = () => s.logs.filter((l) => l.msg === 'request' && l.status === 499);
      for (const until = Date.now() + 5_000; lines().length === 0; await sleep(20))
        if (Date.now() > until) throw new Error('no access line for the request whose client went away');
      expect(lines()).toEqual([expect.objectContaining({ level: 20, method: 'POST', route, status: 499 })]);
      expect(lines()[0]!.duration_ms).toBeGreaterThan(0);
      // The write went on: the client cannot know, a retry with its event_id can.
      for (const until = Date.now() + 5_000; s.store.size < 2; await sleep(20))
        if (Date.now() > until) throw new Error('the write did not complete');
      engine.delayMs = 0;
      const after = (await get(s, '/metrics')).body as string;
      expect((series(after, gone) ?? 0) - (series(before, gone) ?? 0)).toBe(1);
      expect(series(after, timed)).toBe(series(before, timed));
      await sleep(50);
      expect(lines()).toHaveLength(1);
    } finally {
      await s.close();
    }
  });
});
