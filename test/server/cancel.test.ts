/**
 * Long reads stop when no one waits for their answer (QA4 #3, #5, #9): a client that closes its
 * connection, a CLI command abandoned on the control socket, a server that stops. And a handler that
 * takes longer than the socket's inactivity timeout is still answered.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { OPS } from '../../src/cli/ops.js';
import { err, isEventDbxError } from '../../src/core/errors.js';
import { serveControl, socketPath } from '../../src/server/control.js';
import type { SecureStore } from '../../src/store/secure.js';
import { EventStore, verifyAll } from '../../src/store/index.js';
import { expectCode } from '../helpers/expect.js';
import { collectingLog } from '../helpers/log.js';
import { GatedEngine } from '../helpers/gated-engine.js';
import { type TestServer, raw, testServer } from '../helpers/http.js';
import { tempDirs } from '../helpers/temp.js';

const AGGREGATES = 5000;
const ctx = { issuedBy: { group: 'local', user: 'test' } };

async function seed(store: EventStore): Promise<void> {
  for (let i = 0; i < AGGREGATES; i += 500) {
    const reqs = Array.from({ length: 500 }, (_, j) => ({
      aggregate_type: 'customer',
      aggregate_id: `c-${String(i + j).padStart(5, '0')}`,
      event_type: 'created',
      payload: { n: String(i + j) },
    }));
    await store.appendMany(reqs, ctx);
  }
}

async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const end = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const connections = (server: net.Server) =>
  new Promise<number>((resolve) => server.getConnections((_, n) => resolve(n)));

const get = (path: string, token: string) =>
  `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`;

const tempDir = tempDirs('edbx-cancel-');
let server: TestServer | undefined;
afterEach(async () => {
  await server?.close().catch(() => undefined);
  server = undefined;
});

async function gatedServer(o: Parameters<typeof testServer>[0] = {}) {
  const engine = new GatedEngine();
  server = await testServer({ engine, logs: true, ...o });
  await seed(server.store);
  return { s: server, engine };
}

describe('a long read whose client went away (QA4 #5)', () => {
  it('stops at its next chunk, is logged at info level, and the server stays healthy', async () => {
    const { s, engine } = await gatedServer();
    const held = engine.holdAfter(1500);
    const before = engine.entries;
    const socket = net.connect(s.port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(get(`/v1/aggregates?take=1000&skip=${AGGREGATES - 1000}`, s.token));
    await held;
    socket.destroy();
    await until(async () => (await connections(s.app.server)) === 0, 'the server to see the close');
    engine.release();
    await until(() => s.logs.some((l) => l.code === 'EDBX_ERR_CANCELLED'), 'the cancelled request logged');
    // The scan stopped at the chunk after the one it was held in, not at the end of the store.
    expect(engine.entries - before).toBeLessThan(2100);
    const line = s.logs.find((l) => l.code === 'EDBX_ERR_CANCELLED')!;
    expect(line).toMatchObject({ level: 30, route: '/v1/aggregates' });
    expect(s.logs.filter((l) => (l.level as number) >= 40)).toEqual([]);
    const health = await fetch(`${s.url}/v1/aggregates?take=1`, {
      headers: { authorization: `Bearer ${s.token}` },
    });
    expect(health.status).toBe(200);
  });

  it('an abandoned CLI command (control socket closed) stops too, and the server log says so', async () => {
    const engine = new GatedEngine();
    const store = await EventStore.open({ engine });
    await seed(store);
    const dir = await tempDir();
    let outcome: unknown = 'running';
    const log = collectingLog();
    const { logged } = log;
    const control = await serveControl(
      dir,
      async (req, progress, signal) => {
        try {
          return await OPS[req.op]!({ store } as SecureStore, req.args, ctx, progress, signal);
        } catch (e) {
          outcome = e;
          throw e;
        }
      },
      undefined,
      log,
    );
    try {
      const held = engine.holdAfter(1500);
      const before = engine.entries;
      const socket = net.connect(socketPath(dir));
      socket.write(JSON.stringify({ op: 'aggregate.list', args: {}, identity: ctx.issuedBy }) + '\n');
      // As the CLI does: confirm on the acknowledgement, and the command runs.
      socket.once('data', () => socket.write('{"go":true}\n'));
      await held;
      socket.destroy();
      await until(async () => (await connections(control)) === 0, 'the server to see the close');
      engine.release();
      await until(() => outcome !== 'running', 'the command to end');
      expect(isEventDbxError(outcome, 'EDBX_ERR_CANCELLED')).toBe(true);
      expect(engine.entries - before).toBeLessThan(2100);
      await until(() => logged.length > 0, 'the log line');
      expect(logged).toEqual([
        {
          level: 'info',
          fields: { code: 'EDBX_ERR_CANCELLED', channel: 'control', op: 'aggregate.list' },
          message: 'command stopped: the CLI went away before the answer',
        },
      ]);
    } finally {
      control.close();
      await store.close();
    }
  });

  it('a verify of every aggregate stops while it still counts them', async () => {
    const engine = new GatedEngine();
    const store = await EventStore.open({ engine });
    try {
      await seed(store);
      const held = engine.holdAfter(100);
      const before = engine.entries;
      const stop = new AbortController();
      const verifying = verifyAll(store, undefined, stop.signal);
      verifying.catch(() => undefined);
      await held;
      stop.abort(err('EDBX_ERR_CANCELLED'));
      engine.release();
      await expectCode(verifying, 'EDBX_ERR_CANCELLED');
      expect(engine.entries - before).toBeLessThan(AGGREGATES / 2);
    } finally {
      await store.close();
    }
  });

  it('a write is not a long read: an append whose client went away still commits whole', async () => {
    const { s } = await gatedServer();
    const body = JSON.stringify({ event_type: 'renamed', payload: { name: 'x' } });
    const answer = await raw(s.port, (socket) => {
      socket.end(
        `POST /v1/aggregates/customer/c-00001/events HTTP/1.1\r\nHost: x\r\n` +
          `Authorization: Bearer ${s.token}\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    });
    await until(async () => (await s.store.meta('customer', 'c-00001'))?.meta.version === 2, 'the write');
    expect(answer === undefined || answer.status === 201).toBe(true);
  });
});

describe('a handler that takes longer than the socket inactivity timeout (QA4 #3)', () => {
  it('is answered: the timeout applies to idle clients, not to a request being worked on', async () => {
    const { s, engine } = await gatedServer({ timeouts: { requestMs: 100, idleMs: 200 } });
    const held = engine.holdAfter(10);
    const answer = raw(s.port, (socket) => void socket.write(get('/v1/aggregates?take=20', s.token)));
    await held;
    // Longer than the inactivity timeout (200 ms), while the handler is held.
    await new Promise((r) => setTimeout(r, 600));
    engine.release();
    const res = await answer;
    expect(res?.status).toBe(200);
    expect(res?.body.aggregates).toHaveLength(20);
  });

  it('a connection that sends nothing is still closed as idle', async () => {
    const { s } = await gatedServer({ timeouts: { requestMs: 100, idleMs: 200 } });
    const closed = await raw(s.port, () => undefined);
    expect(closed?.status ?? 408).toBe(408);
  });
});

describe('a request still running when the stopping server closes its store (QA4 #9)', () => {
  it('is answered with the stop 503, not logged as a server error', async () => {
    const { s, engine } = await gatedServer();
    const held = engine.holdAfter(100);
    const answer = raw(s.port, (socket) => void socket.write(get('/v1/aggregates?take=1000', s.token)));
    await held;
    const closing = s.app.close();
    await until(() => !s.app.server.listening, 'the server to stop listening');
    await s.store.close();
    engine.release();
    const res = await answer;
    await closing;
    expect(res?.status).toBe(503);
    expect(res?.body.code).toBe('EDBX_ERR_SHUTTING_DOWN');
    expect(s.logs.filter((l) => (l.level as number) >= 50)).toEqual([]);
  });
});
