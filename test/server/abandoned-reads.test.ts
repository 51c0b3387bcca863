/**
 * Work for clients that went away (QA scale #1). A client with a short timeout that tries again has
 * closed its connection before its answer, often before the server even accepted it: such a long read
 * is not started; one whose client goes away while it runs stops within a few records; and an answer
 * built for a client that has gone is not serialised. Each is seen by the entries the store's scans
 * handed out (GatedEngine) and by the server's log (the access line's status, the cancellation line),
 * never by timing.
 */
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditFeature } from '../../src/server/routes/audit.js';
import { schemaFeature } from '../../src/server/routes/schemas.js';
import { tokenFeature } from '../../src/server/routes/tokens.js';
import { PACE_RECORDS } from '../../src/store/pace.js';
import { createSchema } from '../../src/store/schemas.js';
import { GatedEngine } from '../helpers/gated-engine.js';
import { type TestServer, testServer } from '../helpers/http.js';

const ctx = { issuedBy: { group: 'local', user: 'test' } };
const CUSTOMERS = 2000;
const LEDGER_EVENTS = 1500;

let s: TestServer;
let engine: GatedEngine;

beforeAll(async () => {
  engine = new GatedEngine();
  s = await testServer({
    engine,
    logs: true,
    // These features' routes need no keys (they ignore the secure store they are given).
    extraRoutes: [tokenFeature, auditFeature, schemaFeature].map(
      (f) => (app, c) => f.routes!(app, c, undefined as never),
    ),
  });
  for (let i = 0; i < CUSTOMERS; i += 500) {
    await s.store.appendMany(
      Array.from({ length: 500 }, (_, j) => ({
        aggregate_type: 'customer',
        aggregate_id: `c-${String(i + j).padStart(5, '0')}`,
        event_type: 'created',
        payload: { n: String(i + j) },
      })),
      ctx,
    );
  }
  for (let v = 0; v < LEDGER_EVENTS; v += 500) {
    await s.store.appendMany(
      Array.from({ length: 500 }, (_, j) => ({
        aggregate_type: 'ledger',
        aggregate_id: 'l-1',
        event_type: 'posted',
        payload: { seq: String(v + j) },
      })),
      ctx,
    );
  }
  await createSchema(s.store, { aggregate: 'customer', events: 'created' }, ctx);
});
afterAll(() => s?.close());

const request = (path: string) =>
  `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.token}\r\n\r\n`;

async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const end = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The lines saying a request on `route` was stopped because its client went away, after line `from`. */
const cancelled = (from: number, route: string) =>
  s.logs
    .slice(from)
    .filter(
      (l) =>
        l.code === 'EDBX_ERR_CANCELLED' &&
        l.route === route &&
        l.msg === 'request stopped: the client went away before the answer',
    );

/**
 * Until the request on `route` is logged as stopped, or `without()` says it went on regardless: a
 * server that does not stop it logs nothing of it (nothing is answered), and the test fails at once.
 */
const stoppedOr = (from: number, route: string, without: () => boolean) =>
  until(() => cancelled(from, route).length > 0 || without(), `${route} to be stopped`);

/**
 * A client that sends its request and closes the connection, all while this process (the server) is
 * blocked, as a client that timed out while its connection waited to be accepted: the server finds the
 * request and the FIN waiting together.
 */
function closedBeforeAccepted(path: string): void {
  const client = spawnSync(
    process.execPath,
    [
      '-e',
      `const net = require('node:net');
       const s = net.connect(Number(process.argv[1]), '127.0.0.1', () => s.end(process.argv[2]));
       s.on('finish', () => process.exit(0));
       s.on('error', (e) => { console.error(e.message); process.exit(1); });`,
      String(s.port),
      request(path),
    ],
    { encoding: 'utf8' },
  );
  expect(client.status, client.stderr).toBe(0);
}

describe('a long read whose client closed before it started (QA scale #1)', () => {
  it.each([
    ['/v1/aggregates?take=1000', '/v1/aggregates'],
    ['/v1/aggregates/ledger/l-1/events?take=1000', '/v1/aggregates/:aggregate_type/:aggregate_id/events'],
    [
      '/v1/aggregates/ledger/l-1/events/recent?take=1000',
      '/v1/aggregates/:aggregate_type/:aggregate_id/events/recent',
    ],
    ['/v1/aggregates/ledger/l-1?version=1400', '/v1/aggregates/:aggregate_type/:aggregate_id'],
    ['/v1/aggregates/ledger/l-1/verify', '/v1/aggregates/:aggregate_type/:aggregate_id/verify'],
    ['/v1/audit?take=1000', '/v1/audit'],
    ['/v1/audit/verify', '/v1/audit/verify'],
    ['/v1/tokens?take=1000', '/v1/tokens'],
    ['/v1/schemas?take=1000', '/v1/schemas'],
  ])('%s is not started: the store reads nothing, the request is logged as stopped', async (path, route) => {
    const from = s.logs.length;
    const before = engine.entries;
    closedBeforeAccepted(path);
    await stoppedOr(from, route, () => engine.entries > before);
    expect(engine.entries - before).toBe(0);
    expect(cancelled(from, route)).toHaveLength(1);
  });

  it('a client that waits for its answer is answered as before', async () => {
    const res = await fetch(`${s.url}/v1/aggregates/ledger/l-1/events?take=1000`, {
      headers: { authorization: `Bearer ${s.token}` },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { events: unknown[]; next_cursor: string | null };
    expect(body.events).toHaveLength(1000);
    expect(body.next_cursor).not.toBeNull();
  });
});

describe('a long read whose client goes away while it runs (QA scale #1)', () => {
  it.each([
    [
      'events',
      '/v1/aggregates/ledger/l-1/events?take=1000',
      '/v1/aggregates/:aggregate_type/:aggregate_id/events',
    ],
    ['aggregates', '/v1/aggregates?take=1000', '/v1/aggregates'],
  ])('a page of %s stops within a few records of the close', async (_what, path, route) => {
    const socket = net.connect(s.port, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise((r) => socket.once('connect', r));
    const from = s.logs.length;
    const before = engine.entries;
    const ended = engine.scansEnded;
    // The client goes away at the 300th record, while the read goes on with no pause of the test's
    // making: the read itself must give the server the turn in which the close is seen.
    const closeAt = 300;
    engine.at(closeAt, () => socket.destroy());
    socket.write(request(path));
    await stoppedOr(from, route, () => engine.scansEnded > ended && engine.entries - before > 1000);
    expect(cancelled(from, route)).toHaveLength(1);
    // Read whole, the page would have been 1001 records.
    expect(engine.entries - before - closeAt).toBeLessThan(3 * PACE_RECORDS);
  });

  it('an answer finished after its client went away is not serialised: the request ends as stopped', async () => {
    // A page of 10 is read with no pause (fewer records than a pace): it is held at its last record
    // while the client goes away, then let go to the end.
    let seen = false;
    s.app.server.once('connection', (theirs: net.Socket) => theirs.once('close', () => (seen = true)));
    const socket = net.connect(s.port, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise((r) => socket.once('connect', r));
    const from = s.logs.length;
    const held = engine.holdAfter(11);
    socket.write(request('/v1/aggregates?take=10'));
    await held;
    socket.destroy();
    await until(() => seen, 'the server to see the close');
    const ended = engine.scansEnded;
    engine.release();
    // Once its scan has ended, a handler that answers anyway has done so before the next timer.
    await stoppedOr(from, '/v1/aggregates', () => engine.scansEnded > ended);
    await new Promise((r) => setTimeout(r, 0));
    expect(cancelled(from, '/v1/aggregates')).toHaveLength(1);
  });
});
