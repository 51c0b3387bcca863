/**
 * Retries: reads and appends that carry an event id are retried on connection errors and 503 with
 * backoff; an append without an id is sent once, unless the server's 503 says it did nothing with it
 * (stopping, or its request-body budget full). A local HTTP server on 127.0.0.1
 * plays the failing server and counts what arrives. A 503 is an answer only as /health's "failing"
 * (answers.test.ts); a stopping server's problem or a proxy's plain 503 are retried like any.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { answerShuttingDown } from './served.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  EventDbxApiError,
  EventDbxClient,
  EventDbxConnectionError,
  type ClientOptions,
} from '../../src/client/index.js';
import { freePort } from '../helpers/cli.js';
import { answeredRecord } from './fake.js';

type Mode = { fail: number; how: '503' | 'plain 503' | 'reset' };

let server: http.Server;
let url: string;
let mode: Mode = { fail: 0, how: '503' };
let received: Array<{ method: string; url: string; body: string }> = [];

const record = answeredRecord;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      received.push({ method: req.method!, url: req.url!, body });
      if (received.length <= mode.fail) {
        if (mode.how === 'reset') {
          req.socket.destroy();
          return;
        }
        if (mode.how === 'plain 503') {
          // What a proxy, or fastify closing with return503OnClosing, answers: no problem document.
          const text = '{"error":"Service Unavailable","message":"Service Unavailable","statusCode":503}';
          res.writeHead(503, { 'content-type': 'application/json', connection: 'close' });
          res.end(text);
          return;
        }
        answerShuttingDown(res);
        return;
      }
      res.writeHead(req.method === 'POST' ? 201 : 200, { 'content-type': 'application/json' });
      const reply =
        req.url === '/v1/transactions'
          ? { events: [record] }
          : req.method === 'POST'
            ? record
            : { aggregates: [], next_cursor: null };
      res.end(JSON.stringify(reply));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));
beforeEach(() => {
  received = [];
  mode = { fail: 0, how: '503' };
});

const client = (o: Partial<ClientOptions> = {}) =>
  new EventDbxClient({ url, token: 't', retry: { retries: 3, minDelayMs: 1, maxDelayMs: 5 }, ...o });
const append = { event_type: 'x', payload: {} };
const failure = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

describe.each(['503', 'plain 503', 'reset'] as const)('after %s', (how) => {
  it('retries reads until they succeed', async () => {
    mode = { fail: 2, how };
    expect(await client().listAggregates()).toEqual({ aggregates: [], next_cursor: null });
    expect(received.map((r) => r.method)).toEqual(['GET', 'GET', 'GET']);
  });

  it('retries an append with an event id, sending the same body each time', async () => {
    mode = { fail: 2, how };
    await client().append('patient', 'p-1', { ...append, event_id: 'once-only' });
    expect(received).toHaveLength(3);
    expect(new Set(received.map((r) => r.body)).size).toBe(1);
    expect(JSON.parse(received[0]!.body).event_id).toBe('once-only');
  });

  it('re-sends an append without an event id only after a 503 saying nothing was done', async () => {
    mode = { fail: 2, how };
    const e = await failure(client().append('patient', 'p-1', append));
    // A stopping server refuses a write before doing anything with it: safe to send again.
    if (how === '503') {
      expect(e).toBeUndefined();
      expect(received).toHaveLength(3);
      return;
    }
    expect(received).toHaveLength(1);
    if (how === 'plain 503') expect(e).toMatchObject({ code: 'EDBX_ERR_CONNECTION', status: 503 });
    else {
      expect(e).toBeInstanceOf(EventDbxConnectionError);
      expect((e as Error).message).toMatch(/outcome is unknown/);
    }
  });

  it('a failed write that is not an append does not suggest an event id', async () => {
    mode = { fail: 2, how };
    const e = await failure(client().createToken({ group: 'g', user: 'u' }));
    expect(received).toHaveLength(how === '503' ? 3 : 1);
    if (how === 'reset') {
      expect((e as Error).message).toMatch(/outcome is unknown; check before retrying$/);
      expect((e as Error).message).not.toContain('event_id');
    }
  });

  it('retries a transaction only when every event has an id', async () => {
    const ev = (id?: string) => ({
      aggregate_type: 'patient',
      aggregate_id: 'p-1',
      ...append,
      ...(id ? { event_id: id } : {}),
    });
    mode = { fail: 1, how };
    await client().transaction([ev('a'), ev('b')]);
    expect(received).toHaveLength(2);
    received = [];
    mode = { fail: 1, how };
    const e = await failure(client().transaction([ev('a'), ev()]));
    // Sent again only after a 503 saying nothing was done with it.
    if (how === '503') expect([e, received.length]).toEqual([undefined, 2]);
    else expect([e === undefined, received.length]).toEqual([false, 1]);
  });

  it('gives up after the configured retries with a typed error', async () => {
    mode = { fail: 100, how };
    const e = await failure(client().getAggregate('patient', 'p-1'));
    expect(received).toHaveLength(4);
    expect(e).toBeInstanceOf(how === '503' ? EventDbxApiError : EventDbxConnectionError);
    if (how === 'plain 503') expect((e as Error).message).toMatch(/HTTP 503/);
    received = [];
    await failure(client({ retry: false }).getAggregate('patient', 'p-1'));
    expect(received).toHaveLength(1);
  });

  it('health(): a 503 that is not a failing health answer is retried, then an error, as any (qa4-sdk #3)', async () => {
    mode = { fail: 100, how };
    const e = await failure(client().health());
    expect(received).toHaveLength(4);
    if (how === '503') expect(e).toMatchObject({ code: 'EDBX_ERR_SHUTTING_DOWN', status: 503 });
    else expect(e).toBeInstanceOf(EventDbxConnectionError);
  });
});

it('generateEventIds makes appends retryable with one id for all attempts', async () => {
  mode = { fail: 2, how: 'reset' };
  await client({ generateEventIds: true }).append('patient', 'p-1', append);
  expect(received).toHaveLength(3);
  const ids = received.map((r) => JSON.parse(r.body).event_id as string);
  expect(ids[0]).toMatch(/^[0-9a-f-]{36}$/);
  expect(new Set(ids).size).toBe(1);
});

it('a refused connection is a connection error after the retries (reads), at once for appends', async () => {
  const port = await freePort();
  let calls = 0;
  const counting: typeof fetch = (input, init) => {
    calls++;
    return fetch(input, init);
  };
  const c = new EventDbxClient({
    url: `http://127.0.0.1:${port}`,
    token: 't',
    retry: { retries: 2, minDelayMs: 1, maxDelayMs: 2 },
    fetch: counting,
  });
  expect(await failure(c.health())).toBeInstanceOf(EventDbxConnectionError);
  expect(calls).toBe(3);
  calls = 0;
  expect(await failure(c.append('patient', 'p-1', append))).toBeInstanceOf(EventDbxConnectionError);
  expect(calls).toBe(1);
});

it('a per-request timeout aborts a request that hangs, and an aborted signal stops at once', async () => {
  const hang = http.createServer(() => {});
  await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
  try {
    const c = new EventDbxClient({
      url: `http://127.0.0.1:${(hang.address() as AddressInfo).port}`,
      token: 't',
      timeoutMs: 50,
      retry: false,
    });
    expect(await failure(c.health())).toBeInstanceOf(EventDbxConnectionError);
    const ctl = new AbortController();
    const pending = failure(
      new EventDbxClient({ url: c.url, token: 't', timeoutMs: 0 }).health({ signal: ctl.signal }),
    );
    const stop = new Error('stop');
    ctl.abort(stop);
    expect(await pending).toMatchObject({ code: 'EDBX_ERR_CANCELLED', cause: stop });
  } finally {
    hang.closeAllConnections();
    await new Promise<void>((r) => hang.close(() => r()));
  }
});
