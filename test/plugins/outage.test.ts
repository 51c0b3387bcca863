/**
 * A destination that is down loses nothing and dead-letters nothing (QA-dev finding 5: a 75 s
 * PostgreSQL outage dead-lettered one event per retry cycle, which then needed `plugin retry`). Not
 * reaching the destination costs no event an attempt: the plugin shows `unreachable`, keeps retrying
 * and delivers once the destination is back, while an event the destination refuses is still a dead
 * letter. Real destinations: the throwaway PostgreSQL of pg-harness.ts, and a closed port, then a
 * listener, on 127.0.0.1.
 */
import http from 'node:http';
import type net from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type DeliveryHost, configurePlugin, deadLetters } from '../../src/plugins/index.js';
import type { EventStore } from '../../src/store/index.js';
import { freePort } from '../helpers/cli.js';
import {
  FAST,
  caughtUp,
  httpReceiver,
  jane,
  openStore,
  startHost,
  statusOf,
  tcpReceiver,
  userEvents,
  waitFor,
} from './fixtures.js';
import { type PgServer, pgQuery, startPostgres } from './pg-harness.js';

let store: EventStore;
let host: DeliveryHost | undefined;
const closing: Array<() => Promise<unknown>> = [];

beforeEach(async () => {
  store = await openStore();
});
afterEach(async () => {
  await host?.stop();
  host = undefined;
  for (const close of closing.splice(0).reverse()) await close();
  await store.close();
});

const append = (id: string, payload: Record<string, string>) =>
  store.append({ aggregate_type: 'patient', aggregate_id: id, event_type: 'patient-updated', payload }, jane);

const eventIds = (records: ReadonlyArray<{ metadata: { event_id: string } }>) =>
  records.map((r) => r.metadata.event_id);

/** Far past the retry budget: with FAST delays and 2 attempts an event would be given up in ~0.1 s. */
const MAX_ATTEMPTS = 2;
const OUTAGE_RETRIES = 10 * MAX_ATTEMPTS;

/** Until the plugin has retried an unreachable destination OUTAGE_RETRIES times; it is then so. */
async function outlasted(name: string) {
  const s = await waitFor(`${name} to retry past its attempts`, async () => {
    const x = await statusOf(store, name);
    return x.retries >= OUTAGE_RETRIES ? x : undefined;
  });
  expect(s).toMatchObject({ state: 'unreachable', attempts: 0, dead_letters: 0 });
  expect(s.last_error?.code).toBe('EDBX_ERR_PLUGIN_UNREACHABLE');
  return s;
}

describe('PostgreSQL down for longer than the retry budget (qa-dev #5)', () => {
  let server: PgServer;
  beforeAll(async () => {
    server = await startPostgres({ own: true }); // stopped and started by the test
  });
  afterAll(async () => {
    await server?.destroy();
  });

  it('delivers every event once it is back, dead-letters none; a refused event is still a dead letter', async () => {
    const url = await server.createDatabase();
    // The sink adds what it lacks to this table; the check makes PostgreSQL refuse one event.
    await pgQuery(
      url,
      'CREATE TABLE patient (id TEXT PRIMARY KEY, version BIGINT NOT NULL, created_at TIMESTAMPTZ, ' +
        "created_by TEXT, updated_at TIMESTAMPTZ, updated_by TEXT, name TEXT CHECK (name <> 'refused'))",
    );
    host = await startHost(store);
    await configurePlugin(store, 'postgres', { connection: url, ...FAST, max_attempts: MAX_ATTEMPTS }, jane);
    for (let i = 0; i < 10; i++) await append(`p-${i % 4}`, { name: `before ${i}` });
    await caughtUp(store, 'postgres');

    await server.stop();
    for (let i = 0; i < 30; i++) await append(`p-${i % 6}`, { name: `during ${i}` });
    const down = await outlasted('postgres');
    expect(down.last_error?.message).toContain('ECONNREFUSED');
    expect(down.lag).toBeGreaterThanOrEqual(30);

    await server.start();
    const refused = await append('p-9', { name: 'refused' });
    await append('p-0', { name: 'after' });
    await caughtUp(store, 'postgres');

    const dl = await deadLetters(store, 'postgres');
    expect(dl.dead_letters).toEqual([
      expect.objectContaining({ position: refused.position, code: 'EDBX_ERR_PLUGIN_REJECTED' }),
    ]);
    const rows = await pgQuery(url, 'SELECT id, version, name FROM patient ORDER BY id');
    const expected = [];
    for (const id of ['p-0', 'p-1', 'p-2', 'p-3', 'p-4', 'p-5']) {
      const a = await store.aggregate('patient', id);
      expected.push({ id, version: String(a.version), name: a.state.name });
    }
    expect(rows).toEqual(expected);
  });
});

describe('a closed port (qa-dev #5)', () => {
  it('TCP: nothing dead-lettered while nothing listens; every line once a receiver listens', async () => {
    const port = await freePort(); // nothing listens there
    host = await startHost(store);
    await configurePlugin(
      store,
      'tcp',
      { host: '127.0.0.1', port, ...FAST, max_attempts: MAX_ATTEMPTS },
      jane,
    );
    for (let i = 0; i < 5; i++) await append(`p-${i}`, { n: String(i) });
    expect((await outlasted('tcp')).last_error?.message).toContain(`127.0.0.1:${port}`);

    const tcp = await tcpReceiver(port);
    closing.push(() => tcp.close());
    await caughtUp(store, 'tcp');
    await waitFor('every line', () => tcp.lines.length >= 5);
    const got = tcp.lines.map((l) => (JSON.parse(l) as { metadata: { event_id: string } }).metadata.event_id);
    expect(got).toEqual(eventIds(await userEvents(store)));
    expect((await deadLetters(store, 'tcp')).total).toBe(0);
  });

  it('HTTP: nothing dead-lettered while nothing listens; every event, in order, once it listens', async () => {
    const port = await freePort();
    host = await startHost(store);
    await configurePlugin(
      store,
      'http',
      { endpoint: `http://127.0.0.1:${port}/events`, ...FAST, max_attempts: MAX_ATTEMPTS },
      jane,
    );
    for (let i = 0; i < 5; i++) await append(`p-${i}`, { n: String(i) });
    expect((await outlasted('http')).last_error?.message).toContain('ECONNREFUSED');

    const rx = await httpReceiver(port);
    closing.push(() => rx.close());
    await caughtUp(store, 'http');
    expect(eventIds(rx.accepted)).toEqual(eventIds(await userEvents(store)));
    expect((await deadLetters(store, 'http')).total).toBe(0);
  });

  it('HTTP: 503 while the receiver is out of service costs no attempt; a 500 still dead-letters', async () => {
    const rx = await httpReceiver();
    closing.push(() => rx.close());
    const poison = (b: { payload: Record<string, unknown> }) => b.payload.poison === 'yes';
    rx.respond = (body, n) => (n < OUTAGE_RETRIES + 5 ? 503 : poison(body) ? 500 : 200);
    host = await startHost(store);
    await configurePlugin(store, 'http', { endpoint: rx.url, ...FAST, max_attempts: MAX_ATTEMPTS }, jane);
    await append('p-1', { n: '1' });
    const bad = await append('p-2', { poison: 'yes' });
    await append('p-3', { n: '3' });
    await caughtUp(store, 'http');

    expect(eventIds(rx.accepted)).toEqual(
      eventIds((await userEvents(store)).filter((e) => e.position !== bad.position)),
    );
    const dl = await deadLetters(store, 'http');
    expect(dl.dead_letters).toEqual([
      expect.objectContaining({ position: bad.position, attempts: MAX_ATTEMPTS }),
    ]);
    expect(dl.dead_letters[0]!.reason).toContain('answered 500');
  });
});

/**
 * A receiver that takes a request and never answers it (resets, closes, hangs) was reached: the event
 * counts an attempt and is dead-lettered in the end, instead of holding every later event back as
 * `unreachable` forever. Only a kept-alive connection closed just as a request went out is retried at
 * once, on a new connection, for free.
 */
describe('an HTTP receiver that takes a request and gives no answer', () => {
  /** Answers 200, except what `misbehave` handles (it returns true when it dealt with the request). */
  async function receiver(misbehave: (body: string, req: http.IncomingMessage) => boolean) {
    const accepted: string[] = [];
    const server = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (body += d));
      req.on('end', () => {
        if (misbehave(body, req)) return;
        accepted.push((JSON.parse(body) as { metadata: { event_id: string } }).metadata.event_id);
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closing.push(
      () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    );
    return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/events`, accepted };
  }

  async function poisoned(
    misbehave: (body: string, req: http.IncomingMessage) => boolean,
    timeout_ms = 2_000,
  ) {
    const rx = await receiver(misbehave);
    host = await startHost(store);
    await configurePlugin(
      store,
      'http',
      { endpoint: rx.url, ...FAST, timeout_ms, max_attempts: MAX_ATTEMPTS },
      jane,
    );
    await append('p-1', { n: '1' });
    const bad = await append('p-2', { poison: 'yes' });
    await append('p-3', { n: '3' });
    await caughtUp(store, 'http');
    expect(rx.accepted).toEqual(
      eventIds((await userEvents(store)).filter((e) => e.position !== bad.position)),
    );
    const dl = await deadLetters(store, 'http');
    expect(dl.dead_letters).toEqual([
      expect.objectContaining({ position: bad.position, attempts: MAX_ATTEMPTS }),
    ]);
    return dl.dead_letters[0]!.reason;
  }

  it('a connection reset on one event dead-letters that event; the rest are delivered in order', async () => {
    const reason = await poisoned((body, req) => body.includes('"poison"') && (req.socket.destroy(), true));
    expect(reason).toContain('the receiver took the request and closed the connection without answering');
  });

  it('no answer within the timeout to one event dead-letters that event', async () => {
    const reason = await poisoned((body) => body.includes('"poison"'), 200);
    expect(reason).toContain('the receiver took the request but sent no answer within 200 ms');
  });

  it('a kept-alive connection closed as a request goes out is retried at once, costing nothing', async () => {
    let closedOnce = false;
    const served = new WeakMap<net.Socket, number>();
    const rx = await receiver((_body, req) => {
      const n = (served.get(req.socket) ?? 0) + 1;
      served.set(req.socket, n);
      // The second request on a connection, once: as if the receiver's idle timeout had just closed it.
      if (n !== 2 || closedOnce) return false;
      closedOnce = true;
      req.socket.destroy();
      return true;
    });
    host = await startHost(store);
    await configurePlugin(store, 'http', { endpoint: rx.url, ...FAST, max_attempts: MAX_ATTEMPTS }, jane);
    for (let i = 0; i < 4; i++) await append(`p-${i}`, { n: String(i) });
    const s = await caughtUp(store, 'http');
    expect(closedOnce).toBe(true);
    expect(rx.accepted).toEqual(eventIds(await userEvents(store)));
    expect(s).toMatchObject({ retries: 0, attempts: 0, dead_letters: 0 });
  });
});
