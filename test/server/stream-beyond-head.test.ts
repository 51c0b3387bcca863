/**
 * A stream asked to start past the next position the store will write is refused (QA finding 2: a
 * projector that saved its position before the store was restored from a backup resumed with
 * `subscribe({ from: saved + 1 })` and got nothing, and no error, for as long as it ran). The server
 * answers 416 EDBX_ERR_POSITION_BEYOND_HEAD before the stream starts, for `from` and for
 * `Last-Event-ID`; the SDK's `subscribe()` throws it at once instead of reconnecting.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventDbxApiError, EventDbxClient } from '../../src/client/index.js';
import { streamFeature } from '../../src/server/routes/stream.js';
import { type TestServer, testServer } from '../helpers/http.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await testServer({
    extraRoutes: [(app, ctx) => streamFeature.routes!(app, ctx, undefined as never)],
  });
  for (let i = 0; i < 3; i++)
    await srv.store.append(
      { aggregate_type: 'rx', aggregate_id: 'r1', event_type: 's', payload: { n: String(i) } },
      { issuedBy: { group: 'admin', user: 'jane' } },
    );
});
afterAll(async () => {
  await srv.close();
});

const stream = (query: string, headers: Record<string, string> = {}) =>
  fetch(`${srv.url}/v1/events/stream${query}`, {
    headers: { authorization: `Bearer ${srv.token}`, accept: 'text/event-stream', ...headers },
  });

describe('GET /v1/events/stream beyond the head (qa-dev finding 2)', () => {
  it('answers 416 EDBX_ERR_POSITION_BEYOND_HEAD for a from past head + 1, saying what happened', async () => {
    const head = srv.store.size;
    const res = await stream(`?from=${head + 2}`);
    expect(res.status).toBe(416);
    const body = (await res.json()) as { code: string; detail: string };
    expect(body.code).toBe('EDBX_ERR_POSITION_BEYOND_HEAD');
    expect(body.detail).toContain('restored from a backup');
  });

  it('answers 416 for a Last-Event-ID past the head', async () => {
    const res = await stream('', { 'last-event-id': String(srv.store.size + 1) });
    expect(res.status).toBe(416);
    expect(((await res.json()) as { code: string }).code).toBe('EDBX_ERR_POSITION_BEYOND_HEAD');
  });

  it('still streams from head + 1 (the next event) and from the head', async () => {
    for (const from of [srv.store.size, srv.store.size + 1]) {
      const ctl = new AbortController();
      const res = await fetch(`${srv.url}/v1/events/stream?from=${from}`, {
        headers: { authorization: `Bearer ${srv.token}` },
        signal: ctl.signal,
      });
      expect(res.status).toBe(200);
      ctl.abort();
      await res.body?.cancel().catch(() => undefined);
    }
  });

  it('makes subscribe({ from }) throw the error at once, not reconnect forever', async () => {
    const db = new EventDbxClient({ url: srv.url, token: srv.token });
    const started = Date.now();
    const it = db.subscribe({ from: srv.store.size + 50, minDelayMs: 10_000 })[Symbol.asyncIterator]();
    const e = await it.next().then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(EventDbxApiError);
    expect((e as EventDbxApiError).code).toBe('EDBX_ERR_POSITION_BEYOND_HEAD');
    expect((e as EventDbxApiError).status).toBe(416);
    // Thrown on the first answer: no reconnect delay was waited.
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
