/** `_total` metrics are Prometheus counters (QA item 7: appends and fsync batches were gauges). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import os from 'node:os';
import path from 'node:path';
import { configurePlugin } from '../../src/plugins/index.js';
import { type TestServer, get, post, testServer } from '../helpers/http.js';

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
  });
});
