/**
 * Pen-test finding 1: a catch-up (`GET /v1/events/stream?from=1`) read and decrypted every event of
 * the store-wide log, then dropped what the token may not see, on the main event loop, with no bound
 * on the streams one token could open: forty streams of a read-only token scoped to nothing made an
 * append take 21 s; a revoked token's streams went on scanning until they had something to send.
 *
 * Now a catch-up reads and decrypts only the events its token's scopes and `aggregate` filter cover
 * (filtered on the ledger entries), serves other requests between pages, checks the token on every
 * page, and one token has at most `max_streams_per_token` streams open (429).
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventDbxApiError, EventDbxClient } from '../../src/client/index.js';
import { DEFAULT_MAX_STREAMS_PER_TOKEN, loadConfig } from '../../src/config/config.js';
import type { EventRecord } from '../../src/core/event.js';
import { SseParser, type SseMessage } from '../../src/protocol/index.js';
import { streamFeature } from '../../src/server/routes/stream.js';
import { createToken, revokeToken } from '../../src/store/tokens.js';
import { CountingCodec } from '../helpers/codec.js';
import { CountingRocksDbEngine } from '../helpers/engine.js';
import { expectCode } from '../helpers/expect.js';
import { GatedEngine } from '../helpers/gated-engine.js';
import { type TestServer, testServer } from '../helpers/http.js';
import { tempDirs } from '../helpers/temp.js';

/** Positions a catch-up examines per page (stream.ts PAGE). */
const PAGE = 512;
const jane = { issuedBy: { group: 'admin', user: 'jane' } };
const streams = [(app, ctx) => streamFeature.routes!(app, ctx, undefined as never)] as NonNullable<
  Parameters<typeof testServer>[0]
>['extraRoutes'];

const tokenFor = async (s: TestServer, scopes: string[]) =>
  (
    await createToken(
      s.store,
      { group: 'monitoring', user: 'prom', readOnly: true, scopes },
      { issuedBy: { group: 'local', user: 'test' } },
    )
  ).token;

/** `count` events of aggregate type `bulk`, in transactions of 1,000. */
async function bulk(s: TestServer, count: number): Promise<void> {
  for (let done = 0; done < count; done += 1000) {
    const batch = Array.from({ length: Math.min(1000, count - done) }, (_, i) => ({
      aggregate_type: 'bulk',
      aggregate_id: `b${(done + i) % 500}`,
      event_type: 'filled',
      payload: { v: 'x'.repeat(50) },
    }));
    await s.store.appendMany(batch, jane);
  }
}

interface OpenStream {
  readonly status: number;
  /** The answer's body when it was refused. */
  readonly refusal: { code: string; detail: string } | undefined;
  readonly messages: SseMessage[];
  /** Resolves when the server ended the stream (or it was closed). */
  readonly ended: Promise<void>;
  close(): void;
}

/** Open a stream and read its blocks in the background. */
async function openStream(s: TestServer, token: string, query: string): Promise<OpenStream> {
  const ctl = new AbortController();
  const res = await fetch(`${s.url}/v1/events/stream${query}`, {
    headers: { authorization: `Bearer ${token}` },
    signal: ctl.signal,
  });
  const messages: SseMessage[] = [];
  if (res.status !== 200) {
    const refusal = (await res.json()) as { code: string; detail: string };
    return { status: res.status, refusal, messages, ended: Promise.resolve(), close: () => undefined };
  }
  const parser = new SseParser();
  const decoder = new TextDecoder();
  const ended = (async () => {
    for await (const chunk of res.body!)
      messages.push(...parser.push(decoder.decode(chunk, { stream: true })));
  })().catch((e: unknown) => {
    if (!ctl.signal.aborted) throw e;
  });
  return { status: 200, refusal: undefined, messages, ended, close: () => ctl.abort() };
}

async function until(check: () => boolean, what: string, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const caughtUp = (m: SseMessage) => m.event === 'caught-up';
const eventsOf = (messages: readonly SseMessage[]) =>
  messages
    .filter((m) => m.event === 'event')
    .map((m) => ({ id: m.id, e: JSON.parse(m.data) as EventRecord }));

/** Read a stream until it has caught up; its events and the caught-up block. */
async function catchUp(s: TestServer, token: string, query: string) {
  const st = await openStream(s, token, query);
  expect(st.status).toBe(200);
  await until(() => st.messages.some(caughtUp), `caught-up of ${query}`);
  st.close();
  await st.ended;
  return { events: eventsOf(st.messages), caughtUp: st.messages.find(caughtUp)!, first: st.messages[0]! };
}

const tempDir = tempDirs('edbx-stream-cost-', { until: 'all' });

describe('a catch-up reads and decrypts only what the stream may send (pen-test finding 1)', () => {
  let dir: string;
  let engine: CountingRocksDbEngine;
  const codec = new CountingCodec();
  let s: TestServer;
  const patients: EventRecord[] = [];

  beforeAll(async () => {
    dir = await tempDir();
    engine = new CountingRocksDbEngine(path.join(dir, 'data'));
    s = await testServer({ engine, storeOptions: { codec }, extraRoutes: streams });
    // Three patient events before, between and after each thousand of others.
    for (let round = 0; round < 3; round++) {
      for (const id of ['p-1', 'p-2', 'p-3'])
        patients.push(
          await s.store.append(
            {
              aggregate_type: 'patient',
              aggregate_id: id,
              event_type: 'seen',
              payload: { round: String(round) },
            },
            jane,
          ),
        );
      await bulk(s, 1000);
    }
  }, 120_000);

  afterAll(async () => {
    await s?.close();
  });

  it('a token scoped to one type decrypts its events only, and gets them in order with their ids', async () => {
    const t = await tokenFor(s, ['patient']);
    codec.reset();
    const got = await catchUp(s, t, '?from=1');
    expect(got.events.map((x) => x.e)).toEqual(patients);
    expect(got.events.map((x) => x.id)).toEqual(patients.map((e) => String(e.position)));
    expect(got.caughtUp.id).toBe(String(s.store.size));
    expect(JSON.parse(got.caughtUp.data)).toEqual({ position: s.store.size });
    // 3,000 events of other aggregates went by unread: 9 opened, not 3,009.
    expect(codec.count('event')).toBe(patients.length);
  });

  it('a token scoped to one aggregate, and the aggregate filter, decrypt only theirs', async () => {
    const one = await tokenFor(s, ['patient/p-2']);
    codec.reset();
    const got = await catchUp(s, one, '?from=1');
    expect(got.events.map((x) => x.e)).toEqual(patients.filter((e) => e.aggregate_id === 'p-2'));
    expect(codec.count('event')).toBe(3);

    codec.reset();
    const filtered = await catchUp(s, s.token, '?from=1&aggregate=patient');
    expect(filtered.events.map((x) => x.e)).toEqual(patients);
    expect(codec.count('event')).toBe(patients.length);
  });

  it('the monitoring token of the README (scoped to nothing stored) decrypts no event and catches up', async () => {
    const mon = await tokenFor(s, ['prometheus']);
    codec.reset();
    engine.reset();
    const got = await catchUp(s, mon, '?from=1');
    expect(got.events).toEqual([]);
    expect(got.caughtUp.id).toBe(String(s.store.size));
    expect(codec.count('event')).toBe(0);
    // The ledger entries were examined (that is how it knows), the events themselves never read.
    expect(engine.entries.get('P')).toBeGreaterThanOrEqual(3000);
  });

  it('an unscoped token still gets every event of the log but the audit log', async () => {
    codec.reset();
    const got = await catchUp(s, s.token, '?from=1');
    expect(got.events.length).toBe(3009);
    expect(got.events.every((x) => !x.e.aggregate_type.startsWith('$'))).toBe(true);
    const positions = got.events.map((x) => x.e.position);
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
    expect(codec.count('event')).toBe(3009);
  });
});

describe('a long catch-up shares the server, and ends when its token is revoked (pen-test finding 1)', () => {
  const engine = new GatedEngine();
  let s: TestServer;
  const EVENTS = 24 * 1000;

  beforeAll(async () => {
    s = await testServer({ engine, extraRoutes: streams });
    await bulk(s, EVENTS);
  }, 120_000);

  afterAll(async () => {
    await s?.close();
  });

  it('lets the event loop turn between pages of a catch-up that sends nothing: /health and appends go on', async () => {
    const mon = await tokenFor(s, ['prometheus']);
    // Turns of the event loop, counted by a check-phase callback that queues itself again: the most
    // log entries read between two turns. Not a timing: a turn is a turn, however slow the machine.
    const start = engine.entries;
    let last = start;
    let most = 0;
    let ticking = true;
    const tick = () => {
      most = Math.max(most, engine.entries - last);
      last = engine.entries;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const st = await openStream(s, mon, '?from=1');
    await until(() => engine.entries > start, 'the catch-up to start');
    const health = await fetch(`${s.url}/health`);
    expect(health.status).toBe(200);
    const append = await fetch(`${s.url}/v1/aggregates/patient/p-lat/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ event_type: 'updated', payload: { a: '1' } }),
    });
    expect(append.status).toBe(201);
    const readThen = engine.entries - start;
    await until(() => st.messages.some(caughtUp), 'the catch-up to finish');
    ticking = false;
    // A page at most between two turns (before: the whole log in one).
    expect(most).toBeLessThanOrEqual(PAGE);
    // Both were answered while most of the log was still to be examined.
    expect(readThen).toBeLessThan(EVENTS / 2);
    expect(eventsOf(st.messages)).toEqual([]);
    st.close();
    await st.ended;
  }, 120_000);

  it("ends a revoked token's stream within a page of its catch-up, with the error event", async () => {
    const mon = await tokenFor(s, ['prometheus']);
    // Hold the catch-up in its first page, revoke the token, then let it go on.
    const held = engine.holdAfter(100);
    const st = await openStream(s, mon, '?from=1');
    await held;
    await revokeToken(s.store, mon, jane);
    const atRevoke = engine.entries;
    engine.release();
    await st.ended;
    // It finished the page it was reading, and read no other: before, it read the whole log.
    expect(engine.entries - atRevoke).toBeLessThanOrEqual(PAGE);
    expect(st.messages.some(caughtUp)).toBe(false);
    const last = st.messages.at(-1)!;
    expect(last.event).toBe('error');
    expect(JSON.parse(last.data)).toMatchObject({ code: 'EDBX_ERR_TOKEN_REVOKED', status: 401 });
  }, 60_000);
});

describe('one token has at most max_streams_per_token streams open (pen-test finding 1)', () => {
  let s: TestServer;

  beforeAll(async () => {
    s = await testServer({ extraRoutes: streams });
  });
  afterAll(async () => {
    await s?.close();
  });

  const refused = async () =>
    Number(
      /^eventdbx_stream_refused_total (\d+)/m.exec(
        await (await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${s.token}` } })).text(),
      )?.[1] ?? NaN,
    );

  it('refuses one more with 429 EDBX_ERR_TOO_MANY_STREAMS naming the cap; other tokens and freed slots stream', async () => {
    expect(DEFAULT_MAX_STREAMS_PER_TOKEN).toBe(16);
    const mon = await tokenFor(s, ['prometheus']);
    const open: OpenStream[] = [];
    for (let i = 0; i < DEFAULT_MAX_STREAMS_PER_TOKEN; i++) {
      const st = await openStream(s, mon, '?from=1');
      expect(st.status).toBe(200);
      open.push(st);
    }
    const over = await openStream(s, mon, '?from=1');
    expect(over.status).toBe(429);
    expect(over.refusal!.code).toBe('EDBX_ERR_TOO_MANY_STREAMS');
    expect(over.refusal!.detail).toContain('16 event streams open');
    expect(over.refusal!.detail).toContain('max_streams_per_token 16');
    expect(await refused()).toBe(1);
    // The SDK's subscribe() throws it at once rather than reconnecting for ever.
    const sdk = new EventDbxClient({ url: s.url, token: mon });
    const e = await sdk
      .subscribe({ from: 1, minDelayMs: 10_000 })
      [Symbol.asyncIterator]()
      .next()
      .then(
        () => undefined,
        (x: unknown) => x,
      );
    expect(e).toBeInstanceOf(EventDbxApiError);
    expect((e as EventDbxApiError).code).toBe('EDBX_ERR_TOO_MANY_STREAMS');
    expect((e as EventDbxApiError).status).toBe(429);
    expect(await refused()).toBe(2);

    // Another token is not limited by this one's streams.
    const other = await openStream(s, s.token, '?from=1');
    expect(other.status).toBe(200);
    other.close();

    // A stream that ends frees its slot (the server sees the close a moment later).
    open.pop()!.close();
    let again: OpenStream | undefined;
    for (const deadline = Date.now() + 10_000; Date.now() < deadline;) {
      again = await openStream(s, mon, '?from=1');
      if (again.status === 200) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(again!.status).toBe(200);
    for (const st of [...open, again!]) st.close();
  }, 60_000);

  it('takes its cap from the server options, the config file or EVENTDBX_MAX_STREAMS_PER_TOKEN', async () => {
    const small = await testServer({ extraRoutes: streams, maxStreamsPerToken: 1 });
    try {
      const first = await openStream(small, small.token, '');
      expect(first.status).toBe(200);
      const second = await openStream(small, small.token, '');
      expect(second.status).toBe(429);
      expect(second.refusal!.detail).toContain('max_streams_per_token 1');
      first.close();
    } finally {
      await small.close();
    }
    const none = { EVENTDBX_CONFIG: '/nonexistent/.eventdbx.json' };
    expect((await loadConfig(undefined, none)).maxStreamsPerToken).toBe(16);
    const dir = await tempDir();
    const file = path.join(dir, '.eventdbx.json');
    await writeFile(file, JSON.stringify({ max_streams_per_token: 4 }));
    expect((await loadConfig(file, {})).maxStreamsPerToken).toBe(4);
    expect(
      (await loadConfig(undefined, { ...none, EVENTDBX_MAX_STREAMS_PER_TOKEN: '64' })).maxStreamsPerToken,
    ).toBe(64);
    for (const bad of ['0', 'lots', '1.5']) {
      const e = await expectCode(
        loadConfig(undefined, { ...none, EVENTDBX_MAX_STREAMS_PER_TOKEN: bad }),
        'EDBX_ERR_CONFIG_INVALID',
      );
      expect(e.message).toContain('EVENTDBX_MAX_STREAMS_PER_TOKEN');
    }
  });
});
