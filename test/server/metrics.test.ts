/** `_total` metrics are Prometheus counters (QA item 7: appends and fsync batches were gauges). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
});
