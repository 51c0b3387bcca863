/**
 * An idempotent write whose attempts got no answer (qa-retry #1): a real server (`eventdbx start`,
 * RocksDB) behind a node:http proxy on 127.0.0.1 that forwards a request and then drops the
 * connection, drops it unforwarded, holds it, or answers as a gateway or a stopping server would. The
 * error then says the write may have been applied and how to find out (send it again with the same
 * event_id: the server answers 200, `duplicate: true`), and counts those attempts in `unanswered`. A
 * write that provably never reached the server (refused connections) keeps the plain message.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  EventDbxApiError,
  EventDbxCancelledError,
  EventDbxClient,
  EventDbxClientError,
  EventDbxConnectionError,
  type ClientOptions,
} from '../../src/client/index.js';
import { freePort } from '../helpers/cli.js';
import { answerShuttingDown, servedClient } from './served.js';

/**
 * What the proxy does with one request: `pass` forwards it and relays the answer; `apply-…` forwards
 * it (the server applies it) and then drops the answer, holds the connection, or answers 504 instead;
 * the others never forward it.
 */
type Action = 'pass' | 'apply-drop' | 'drop' | 'apply-hang' | 'hang' | 'apply-504' | '504' | 'stopping';

interface Proxy {
  readonly url: string;
  /** Requests that reached the proxy. */
  readonly hits: () => number;
  close(): Promise<void>;
}

const served = servedClient();

function forward(req: http.IncomingMessage, body: Buffer): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const up = http.request(
      {
        host: '127.0.0.1',
        port: served.server.port,
        path: req.url,
        method: req.method,
        headers: req.headers,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks) }));
      },
    );
    up.on('error', reject);
    up.end(body);
  });
}

/** A proxy to the server doing `actions` in turn, then `pass`; on `port` (default: any free one). */
async function proxy(actions: readonly Action[], port = 0): Promise<Proxy> {
  let hits = 0;
  const todo = [...actions];
  const s = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      hits++;
      const action = todo.shift() ?? 'pass';
      const body = Buffer.concat(chunks);
      const answer = action === 'pass' || action.startsWith('apply-') ? await forward(req, body) : undefined;
      if (action === 'apply-drop' || action === 'drop') req.socket.destroy();
      else if (action === 'apply-hang' || action === 'hang') {
        // Never answered: the client gives up (timeoutMs).
      } else if (action === 'apply-504' || action === '504') {
        res.writeHead(504, { 'content-type': 'text/html' });
        res.end('<html><body><h1>504 Gateway Time-out</h1></body></html>');
      } else if (action === 'stopping') {
        // What a server that is shutting down answers.
        answerShuttingDown(res);
      } else {
        res.writeHead(answer!.status, { 'content-type': 'application/json' });
        res.end(answer!.body);
      }
    });
  });
  await new Promise<void>((r) => s.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`,
    hits: () => hits,
    close: () =>
      new Promise<void>((r) => {
        s.closeAllConnections();
        s.close(() => r());
      }),
  };
}

const client = (url: string, o: Partial<ClientOptions> = {}) =>
  new EventDbxClient({
    url,
    token: served.server.adminToken,
    retry: { retries: 2, minDelayMs: 1, maxDelayMs: 5 },
    ...o,
  });

const rejection = (promise: Promise<unknown>) =>
  promise.then(
    (v) => expect.fail(`resolved with ${JSON.stringify(v)}`),
    (e: unknown) => e as EventDbxClientError,
  );

const note = (n: number, ids = 'event_id', records = 'record') =>
  `; ${n} attempt${n === 1 ? '' : 's'} got no answer, so it may have been applied: send it again ` +
  `with the same ${ids} to learn the outcome (if it was applied, the answer is HTTP 200 with the ` +
  `original ${records}, duplicate: true)`;

const credit = (id: string) => ({
  event_type: 'credited',
  payload: { amount: '100' },
  event_id: `${id}-pay`,
});

describe('an idempotent write whose attempts got no answer (qa-retry #1)', () => {
  it('an append applied behind dropped connections says it may have been applied; the advised retry says it was', async () => {
    const px = await proxy(['apply-drop', 'drop', 'drop']);
    try {
      const e = await rejection(client(px.url).appendOutcome('account', 'u1', credit('u1')));
      expect(e).toBeInstanceOf(EventDbxConnectionError);
      expect(e).toMatchObject({ code: 'EDBX_ERR_CONNECTION', unanswered: 3 });
      expect(e.message).toMatch(/^POST \/v1\/aggregates\/account\/u1\/events failed: fetch failed \(/);
      expect(e.message.endsWith(note(3))).toBe(true);
      expect(px.hits()).toBe(3);
      // Following the advice: the same event_id again answers 200 with the original record.
      const again = await served.db.appendOutcome('account', 'u1', credit('u1'));
      expect(again).toMatchObject({ duplicate: true, record: { version: 1, payload: { amount: '100' } } });
      expect((await served.db.getAggregate('account', 'u1')).version).toBe(1);
    } finally {
      await px.close();
    }
  });

  it('a transaction never applied says the same, with event_ids; the advised retry writes it once', async () => {
    const px = await proxy(['drop', 'drop', 'drop']);
    const events = [
      {
        aggregate_type: 'account',
        aggregate_id: 'u2a',
        event_type: 'debited',
        payload: {},
        event_id: 'u2-d',
      },
      {
        aggregate_type: 'account',
        aggregate_id: 'u2b',
        event_type: 'credited',
        payload: {},
        event_id: 'u2-c',
      },
    ];
    try {
      const e = await rejection(client(px.url).transactionOutcome(events));
      expect(e).toMatchObject({ code: 'EDBX_ERR_CONNECTION', unanswered: 3 });
      expect(e.message).toMatch(/^POST \/v1\/transactions failed: /);
      expect(e.message.endsWith(note(3, 'event_ids', 'records'))).toBe(true);
      const again = await served.db.transactionOutcome(events);
      expect([again.duplicate, again.records.map((r) => r.version)]).toEqual([false, [1, 1]]);
    } finally {
      await px.close();
    }
  });

  it('a write refused on every attempt never reached the server, and says so: unanswered 0', async () => {
    const port = await freePort();
    const refused = client(`http://127.0.0.1:${port}`);
    const never = '; it never reached the server: nothing was applied';
    const e = await rejection(refused.append('account', 'u3', credit('u3')));
    expect(e).toBeInstanceOf(EventDbxConnectionError);
    expect(e).toMatchObject({
      unanswered: 0,
      message: `POST /v1/aggregates/account/u3/events failed: fetch failed (ECONNREFUSED)${never}`,
    });
    // Without an event_id too: not "the outcome is unknown", which it is not.
    const plain = await rejection(refused.append('account', 'u3', { event_type: 'credited', payload: {} }));
    expect(plain).toMatchObject({
      unanswered: 0,
      message: `POST /v1/aggregates/account/u3/events failed: fetch failed (ECONNREFUSED)${never}`,
    });
    // A read says nothing of applying.
    const read = await rejection(refused.getAggregate('account', 'u3'));
    expect(read.message).toBe('GET /v1/aggregates/account/u3 failed: fetch failed (ECONNREFUSED)');
  });

  it('an attempt applied, then refused connections: still said to be maybe applied (1 attempt)', async () => {
    const px = await proxy(['apply-drop']);
    const db2 = client(px.url, { retry: { retries: 2, minDelayMs: 200, maxDelayMs: 200 } });
    const pending = rejection(db2.append('account', 'u4', credit('u4')));
    // Once the first attempt got through, nothing listens any more.
    while (px.hits() === 0) await new Promise((r) => setTimeout(r, 5));
    await px.close();
    const e = await pending;
    expect(e).toMatchObject({ code: 'EDBX_ERR_CONNECTION', unanswered: 1 });
    expect(e.message).toBe(
      `POST /v1/aggregates/account/u4/events failed: fetch failed (ECONNREFUSED)${note(1)}`,
    );
    expect((await served.db.appendOutcome('account', 'u4', credit('u4'))).duplicate).toBe(true);
  });

  it('timeouts after sending count as unanswered', async () => {
    const px = await proxy(['apply-hang', 'hang']);
    try {
      const db2 = client(px.url, { timeoutMs: 300, retry: { retries: 1, minDelayMs: 1, maxDelayMs: 5 } });
      const e = await rejection(db2.append('account', 'u5', credit('u5')));
      expect(e).toMatchObject({ code: 'EDBX_ERR_CONNECTION', unanswered: 2 });
      expect(e.message).toBe(
        `POST /v1/aggregates/account/u5/events failed: no answer within 300 ms (timeoutMs)${note(2)}`,
      );
      expect((await served.db.appendOutcome('account', 'u5', credit('u5'))).duplicate).toBe(true);
    } finally {
      await px.close();
    }
  });

  it("a gateway's 504 on every attempt counts them all, the last one included", async () => {
    const px = await proxy(['apply-504', '504', '504']);
    try {
      const e = await rejection(client(px.url).append('account', 'u6', credit('u6')));
      expect(e).toMatchObject({ code: 'EDBX_ERR_CONNECTION', status: 504, unanswered: 3 });
      expect(e.message).toMatch(/a gateway in front of the server answered HTTP 504: /);
      expect(e.message.endsWith(note(3))).toBe(true);
    } finally {
      await px.close();
    }
  });

  it("a stopping server's answer after an unanswered attempt carries the count and the advice", async () => {
    const px = await proxy(['apply-drop', 'stopping', 'stopping']);
    try {
      const e = await rejection(client(px.url).append('account', 'u7', credit('u7')));
      expect(e).toBeInstanceOf(EventDbxApiError);
      expect(e).toMatchObject({ code: 'EDBX_ERR_SHUTTING_DOWN', status: 503, unanswered: 1 });
      expect(e.message).toBe(`EDBX_ERR_SHUTTING_DOWN: the server is shutting down${note(1)}`);
    } finally {
      await px.close();
    }
  });

  it('a refusal of the request itself answers for the earlier attempts: no count, no advice', async () => {
    const px = await proxy(['drop']);
    try {
      const body = { ...credit('u8'), expected_version: 5 };
      const e = await rejection(client(px.url).append('account', 'u8', body));
      expect(e).toMatchObject({ code: 'EDBX_ERR_VERSION_CONFLICT', status: 409, unanswered: 0 });
      expect(e.message).not.toContain('attempt');
      expect(px.hits()).toBe(2);
    } finally {
      await px.close();
    }
  });

  it('an abort while waiting to retry after an unanswered attempt carries the count and the advice', async () => {
    const px = await proxy(['apply-drop']);
    try {
      const ctl = new AbortController();
      const db2 = client(px.url, { retry: { retries: 2, minDelayMs: 60_000, maxDelayMs: 60_000 } });
      const pending = rejection(db2.append('account', 'u9', credit('u9'), { signal: ctl.signal }));
      while (px.hits() === 0) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 100));
      ctl.abort(new Error('gave up'));
      const e = await pending;
      expect(e).toBeInstanceOf(EventDbxCancelledError);
      expect(e).toMatchObject({ code: 'EDBX_ERR_CANCELLED', unanswered: 1 });
      expect(e.message).toBe(`the call was aborted by its signal (Error: gave up)${note(1)}`);
    } finally {
      await px.close();
    }
  });

  it('an append without an event_id keeps its wording, and counts its one attempt', async () => {
    const px = await proxy(['apply-drop']);
    try {
      const e = await rejection(
        client(px.url).append('account', 'u10', { event_type: 'credited', payload: { amount: '1' } }),
      );
      expect(e).toMatchObject({ code: 'EDBX_ERR_CONNECTION', unanswered: 1 });
      expect(e.message).toMatch(
        /failed: fetch failed \([A-Z_]+\); the outcome is unknown \(send an event_id to make appends safe to retry\)$/,
      );
      expect(px.hits()).toBe(1);
    } finally {
      await px.close();
    }
  });

  it('a read whose attempts got no answer says nothing of being applied', async () => {
    const px = await proxy(['drop', 'drop', 'drop']);
    try {
      const e = await rejection(client(px.url).getAggregate('account', 'u1'));
      expect(e).toMatchObject({ code: 'EDBX_ERR_CONNECTION', unanswered: 0 });
      expect(e.message).toMatch(/^GET \/v1\/aggregates\/account\/u1 failed: fetch failed \([A-Z_]+\)$/);
    } finally {
      await px.close();
    }
  });

  it('an append retried after refused connections only is not resent: nothing was sent', async () => {
    const port = await freePort();
    // Nothing listens on `port` for 300 ms, then the proxy does.
    const opening = new Promise<Proxy>((r) => setTimeout(() => r(proxy([], port)), 300));
    const db2 = client(`http://127.0.0.1:${port}`, {
      retry: { retries: 6, minDelayMs: 100, maxDelayMs: 200 },
    });
    try {
      const out = await db2.appendOutcome('account', 'u11', credit('u11'));
      expect(out).toMatchObject({ duplicate: false, resent: false, record: { version: 1 } });
    } finally {
      await (await opening).close();
    }
  });
});
