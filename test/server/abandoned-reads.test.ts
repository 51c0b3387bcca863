/**
 * Work for clients that went away (QA scale #1). A client with a short timeout that tries again has
 * closed its connection before its answer: a long read whose client goes away while it runs stops
 * within a few records. Seen by the entries the store's scans handed out (GatedEngine) and by the
 * server's log (the cancellation line), never by timing.
 */
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
});
