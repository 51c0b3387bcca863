/**
 * A server whose writes failed says so (QA qa2-ops item 2): after a failed write (disk full) the store
 * refuses every write until it is reopened, so /health answers 503 `status: "failing"` with its code
 * (load balancers and monitors notice), and the failure is logged once, at error level, with its cause.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { err } from '../../src/core/errors.js';
import { MemoryEngine } from '../../src/storage/memory/memory-engine.js';
import { post, testServer } from '../helpers/http.js';

const event = { event_type: 'admitted', payload: { ward: '3' } };

describe('/health of a server whose writes failed (qa2-ops #2)', () => {
  it('answers 503 "failing" with the reason, and the failure is logged once at error level', async () => {
    const engine = new MemoryEngine();
    const s = await testServer({ engine, logs: true });
    try {
      expect(await post(s, '/v1/aggregates/patient/p-1/events', event)).toMatchObject({ status: 201 });
      const ok = await fetch(`${s.url}/health`);
      expect(ok.status).toBe(200);
      const before = (await ok.json()) as Record<string, unknown>;
      // The store's format version is shown (qa-ops #5).
      expect(before).toMatchObject({ status: 'ok', version: 'test', restrict: 'false', layout: 2 });

      engine.faultNextWrite(err('EDBX_ERR_STORE_IO', { reason: 'No space left on device' }));
      const failed = await post(s, '/v1/aggregates/patient/p-1/events', event);
      expect({ status: failed.status, code: failed.body.code, detail: failed.body.detail }).toEqual({
        status: 500,
        code: 'EDBX_ERR_STORE_IO',
        // The cause (which may name server files) is in the log, not in the answer (qa-ops #6).
        detail: "storage error on the server; the server's log has the cause",
      });
      // Refused from now on, although the disk would take the write again.
      const refused = await post(s, '/v1/aggregates/patient/p-2/events', event);
      expect(refused.status).toBe(500);
      expect(refused.body.detail).toBe(
        "storage error: an earlier write failed; every write is refused until the cause is fixed and the server restarted (`eventdbx restart`); the server's log has the cause",
      );

      const res = await fetch(`${s.url}/health`);
      expect(res.status).toBe(503);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      const body = (await res.json()) as Record<string, unknown>;
      expect(body).toMatchObject({
        status: 'failing',
        version: 'test',
        restrict: 'false',
        events: before.events,
        layout: 2,
        code: 'EDBX_ERR_STORE_IO',
      });
      expect(typeof body.uptime_seconds).toBe('number');
      expect(body.detail).not.toContain('No space left on device');
      expect(body.detail).toContain('`eventdbx restart`');
      expect(s.store.writeFailure?.code).toBe('EDBX_ERR_STORE_IO');

      const told = s.logs.filter((l) => String(l.msg).startsWith('every write is refused'));
      expect(told).toHaveLength(1);
      expect(told[0]).toMatchObject({ level: 50, code: 'EDBX_ERR_STORE_IO' });
      expect(String(told[0]!.msg)).toContain('No space left on device');
    } finally {
      await s.close();
    }
  });

  it('the OpenAPI document gives /health a 503 answer of its own next to the shutdown problem', async () => {
    const s = await testServer();
    try {
      const doc = (await (await fetch(`${s.url}/openapi.json`)).json()) as any;
      const content = doc.paths['/health'].get.responses['503'].content;
      expect(Object.keys(content).sort()).toEqual(['application/json', 'application/problem+json']);
      expect(content['application/json'].schema.properties.detail).toEqual({ type: 'string' });
    } finally {
      await s.close();
    }
  });
});

describe('/health uptime (QA time #3)', () => {
  afterEach(() => void vi.useRealTimers());

  it('is how long the process has run, by the monotonic clock: a wall-clock step back leaves it as it was', async () => {
    const s = await testServer();
    try {
      const uptime = async () =>
        ((await (await fetch(`${s.url}/health`)).json()) as { uptime_seconds: number }).uptime_seconds;
      const before = await uptime();
      // The wall clock steps back 3 hours (an NTP step, a VM resumed); the monotonic clock does not.
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(Date.now() - 3 * 3600_000);
      const after = await uptime();
      // Before: Date.now() - started = -10800 s.
      expect(after).toBeGreaterThanOrEqual(before);
      expect(Math.abs(after - process.uptime())).toBeLessThanOrEqual(1);
    } finally {
      vi.useRealTimers();
      await s.close();
    }
  });
});
