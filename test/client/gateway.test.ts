/**
 * The SDK behind a gateway and across a restart (QA sdk #4, #8): a real in-process server on
 * 127.0.0.1, reached through a tiny node:http proxy that answers 502 or 504 (text/html, no problem
 * document) as a reverse proxy does while its upstream is away. Retryable requests ride them out like
 * a 503; the rest fail as connection errors naming the status. With the default retry budget, a read
 * rides out 1.6 s of refused connections (an `eventdbx restart` takes 1.2–2.5 s).
 */
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EventDbxClient, EventDbxConnectionError } from '../../src/client/index.js';
import { freePort } from '../helpers/cli.js';
import { type TestServer, testServer } from '../helpers/http.js';

let upstream: TestServer;
let proxy: http.Server;
let url: string;
/** The next `fail` requests get `status`; with `applied`, they reach the server first (its answer is lost). */
let mode = { fail: 0, status: 502, applied: false };
let hits = 0;

const forward = (
  req: http.IncomingMessage,
  body: Buffer,
): Promise<{ res: http.IncomingMessage; body: Buffer }> =>
  new Promise((resolve, reject) => {
    const up = http.request(
      { host: '127.0.0.1', port: upstream.port, path: req.url, method: req.method, headers: req.headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ res, body: Buffer.concat(chunks) }));
      },
    );
    up.on('error', reject);
    up.end(body);
  });

beforeAll(async () => {
  upstream = await testServer();
  proxy = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      hits++;
      const body = Buffer.concat(chunks);
      if (mode.fail > 0) {
        mode.fail--;
        if (mode.applied) await forward(req, body);
        res.writeHead(mode.status, { 'content-type': 'text/html' });
        res.end(`<html><body><h1>${mode.status} Bad Gateway</h1></body></html>`);
        return;
      }
      const answer = await forward(req, body);
      res.writeHead(answer.res.statusCode!, answer.res.headers);
      res.end(answer.body);
    });
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((r) => proxy.close(() => r()));
  await upstream.close();
});
beforeEach(() => {
  hits = 0;
  mode = { fail: 0, status: 502, applied: false };
});

const client = () =>
  new EventDbxClient({ url, token: upstream.token, retry: { retries: 3, minDelayMs: 1, maxDelayMs: 5 } });
const rejection = (p: Promise<unknown>) =>
  p.then(
    (v) => expect.fail(`resolved with ${JSON.stringify(v)}`),
    (e: unknown) => e,
  );

describe.each([502, 504])('a gateway answering %i without a problem document (qa-sdk #4)', (status) => {
  it('is retried like a 503 for reads, which then succeed', async () => {
    mode = { fail: 2, status, applied: false };
    expect((await client().listAggregates()).aggregates).toBeInstanceOf(Array);
    expect(hits).toBe(3);
  });

  it('is a connection error naming the status once the retries are used up', async () => {
    mode = { fail: 100, status, applied: false };
    const e = await rejection(client().getAggregate('patient', 'p-1'));
    expect(e).toBeInstanceOf(EventDbxConnectionError);
    expect(e).toMatchObject({ code: 'EDBX_ERR_CONNECTION', status });
    expect((e as Error).message).toContain(`HTTP ${status}`);
    expect(hits).toBe(4);
  });

  it('an append with an event_id applied behind it is retried and comes back a resent duplicate', async () => {
    mode = { fail: 1, status, applied: true };
    const id = `p-gw-${status}`;
    const out = await client().appendOutcome('patient', id, { event_type: 'x', payload: {}, event_id: id });
    expect(out).toMatchObject({ duplicate: true, resent: true, record: { version: 1 } });
    expect(hits).toBe(2);
  });

  it('an append without an event_id is sent once: its outcome is unknown', async () => {
    mode = { fail: 1, status, applied: false };
    const e = await rejection(client().append('patient', 'p-once', { event_type: 'x', payload: {} }));
    expect(e).toMatchObject({ code: 'EDBX_ERR_CONNECTION', status });
    expect((e as Error).message).toMatch(/outcome is unknown \(send an event_id/);
    expect(hits).toBe(1);
  });
});
it('the default retry budget rides out a restart: 1.6 s of refused connections (qa-sdk #8)', async () => {
  const port = await freePort();
  // Nothing listens on `port` for 1.6 s, then a TCP relay to the real server does.
  const sockets = new Set<net.Socket>();
  const relay = net.createServer((down) => {
    const up = net.connect(upstream.port, '127.0.0.1');
    sockets.add(up).add(down);
    down.pipe(up).pipe(down);
    for (const s of [up, down]) s.on('error', () => (up.destroy(), down.destroy()));
  });
  const opened = new Promise<void>((r) => setTimeout(() => relay.listen(port, '127.0.0.1', r), 1600));
  try {
    const db = new EventDbxClient({ url: `http://127.0.0.1:${port}`, token: upstream.token });
    expect((await db.health()).status).toBe('ok');
  } finally {
    await opened;
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => relay.close(() => r()));
  }
});
