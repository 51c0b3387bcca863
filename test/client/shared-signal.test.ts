/**
 * One shutdown AbortSignal passed to many calls in flight at once, and to `subscribe()`, as a service
 * does (QA qa-sdk2 #2): the SDK adds one 'abort' listener to it, not one per call, so Node prints no
 * MaxListenersExceededWarning past 10; aborting it still cancels every call, and once the calls are
 * over no listener is left on it. A real in-process server (in-memory engine, with the event stream)
 * on 127.0.0.1, and a port where nothing listens.
 */
import { getEventListeners } from 'node:events';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EventDbxClient, type EventRecord } from '../../src/client/index.js';
import { streamFeature } from '../../src/server/routes/stream.js';
import { freePort } from '../helpers/cli.js';
import { type TestServer, testServer } from '../helpers/http.js';
import { rejection } from './checks.js';

/** More than Node's default of 10 listeners per EventTarget. */
const CALLS = 25;
/** As many streams as a token may hold (16), and more than 10. */
const STREAMS = 12;

let s: TestServer;
const warnings: Error[] = [];
const onWarning = (w: Error) => warnings.push(w);

beforeAll(async () => {
  s = await testServer({
    extraRoutes: [(app, ctx) => streamFeature.routes!(app, ctx, undefined as never)],
  });
  const db = new EventDbxClient({ url: s.url, token: s.token });
  for (let i = 0; i < 3; i++) await db.append('patient', `p-${i}`, { event_type: 'x', payload: { n: i } });
  await db.append('room', 'r-1', { event_type: 'opened', payload: {} });
  process.on('warning', onWarning);
});
afterAll(async () => {
  process.off('warning', onWarning);
  await s.close();
});
afterEach(async () => {
  // Node emits the warning on the next tick after the listener that trips it.
  await new Promise((r) => setImmediate(r));
  expect(warnings.splice(0).map((w) => `${w.name}: ${w.message}`)).toEqual([]);
});

const listeners = (signal: AbortSignal): number => getEventListeners(signal, 'abort').length;

/** A client whose fetch records how many listeners `signal` has each time a request is sent. */
function watching(signal: AbortSignal, seen: number[], o: { fetch?: typeof fetch } = {}): EventDbxClient {
  const inner = o.fetch ?? fetch;
  return new EventDbxClient({
    url: s.url,
    token: s.token,
    retry: false,
    fetch: (input, init) => {
      seen.push(listeners(signal));
      return inner(input, init);
    },
  });
}

describe('one caller signal shared by many calls in flight (qa-sdk2 #2)', () => {
  it(`${CALLS} concurrent reads and writes add one listener to it, and none is left after`, async () => {
    const shutdown = new AbortController();
    const seen: number[] = [];
    const db = watching(shutdown.signal, seen);
    const results = await Promise.all(
      Array.from({ length: CALLS }, (_, i) =>
        i % 5 === 4
          ? db.append(
              'ward',
              `w-${i}`,
              { event_type: 'bed-assigned', payload: { i } },
              { signal: shutdown.signal },
            )
          : db.getAggregate('patient', `p-${i % 3}`, { signal: shutdown.signal }),
      ),
    );
    expect(results).toHaveLength(CALLS);
    expect(seen).toHaveLength(CALLS);
    expect(Math.max(...seen)).toBe(1);
    expect(listeners(shutdown.signal)).toBe(0);
  });

  it('aborting it cancels every call in flight, with its reason, and leaves no listener', async () => {
    const shutdown = new AbortController();
    const seen: number[] = [];
    const hanging: typeof fetch = (_input, init) =>
      new Promise((_, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal!.reason)));
    const db = watching(shutdown.signal, seen, { fetch: hanging });
    const calls = Array.from({ length: CALLS }, (_, i) =>
      rejection(db.getAggregate('patient', `p-${i % 3}`, { signal: shutdown.signal })),
    );
    await expect.poll(() => seen.length).toBe(CALLS);
    expect(listeners(shutdown.signal)).toBe(1);
    const reason = new Error('shutting down');
    shutdown.abort(reason);
    for (const e of await Promise.all(calls))
      expect(e).toMatchObject({ code: 'EDBX_ERR_CANCELLED', cause: reason });
    expect(listeners(shutdown.signal)).toBe(0);
  });

  it('calls waiting to retry share its one listener too, and are cancelled by it', async () => {
    const shutdown = new AbortController();
    let attempts = 0;
    const down = new EventDbxClient({
      url: `http://127.0.0.1:${await freePort()}`,
      retry: { retries: 5, minDelayMs: 60_000, maxDelayMs: 60_000 },
      fetch: (input, init) => (attempts++, fetch(input, init)),
    });
    const calls = Array.from({ length: CALLS }, () => rejection(down.health({ signal: shutdown.signal })));
    // Every call's first attempt was refused; each now waits (a minute) before its retry.
    await expect.poll(() => attempts).toBe(CALLS);
    await new Promise((r) => setTimeout(r, 100));
    expect(listeners(shutdown.signal)).toBe(1);
    shutdown.abort();
    for (const e of await Promise.all(calls)) expect(e).toMatchObject({ code: 'EDBX_ERR_CANCELLED' });
    expect(listeners(shutdown.signal)).toBe(0);
  });

  it(`${STREAMS} subscriptions and ${CALLS} calls on it: one listener; aborting ends every subscription`, async () => {
    const shutdown = new AbortController();
    const seen: number[] = [];
    const db = watching(shutdown.signal, seen);
    const subscriptions = Array.from({ length: STREAMS }, () =>
      db.subscribe({ from: 1, aggregate: 'room', signal: shutdown.signal }),
    );
    const first = await Promise.all(subscriptions.map((sub) => sub.next()));
    expect(first.map((r) => (r.value as EventRecord).aggregate_id)).toEqual(Array(STREAMS).fill('r-1'));
    // Live now, each waiting for a next event; reads on the same signal meanwhile.
    const waiting = subscriptions.map((sub) => sub.next());
    await Promise.all(
      Array.from({ length: CALLS }, () => db.getAggregate('patient', 'p-1', { signal: shutdown.signal })),
    );
    expect(Math.max(...seen)).toBe(1);
    expect(listeners(shutdown.signal)).toBe(1);
    shutdown.abort();
    for (const r of await Promise.all(waiting)) expect(r).toMatchObject({ done: true });
    expect(listeners(shutdown.signal)).toBe(0);
  });
});
