/**
 * The event stream end to end: `GET /v1/events/stream` on a real server and `client.subscribe()`.
 * Connections are cut by a TCP proxy on 127.0.0.1 — mid-event, while several clients append
 * concurrently, while the consumer is not reading, and across a server restart — and the subscriber
 * must still see every event exactly once, in position order.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventDbxApiError, EventDbxClient, type EventRecord } from '../../src/client/index.js';
import { type Project, type RunningServer, project, startServer } from '../helpers/cli.js';

/**
 * A TCP proxy whose upstream can change, which can cut connections after a byte budget, and whose
 * valve can stop reading from the server (so the server's socket really fills up).
 */
async function proxy(target: () => number) {
  const pairs = new Set<[net.Socket, net.Socket]>();
  const state = { kills: 0, budget: undefined as undefined | (() => number) };
  let closedValve = false;
  const server = net.createServer((down) => {
    const up = net.connect(target(), '127.0.0.1');
    if (closedValve) up.pause();
    const pair: [net.Socket, net.Socket] = [down, up];
    pairs.add(pair);
    let left = state.budget?.() ?? Infinity;
    const cut = () => {
      pairs.delete(pair);
      down.destroy();
      up.destroy();
    };
    down.on('data', (d) => up.write(d));
    up.on('data', (d: Buffer) => {
      if (d.length < left) {
        left -= d.length;
        down.write(d);
        return;
      }
      // Forward part of the chunk (often the middle of an SSE block), then cut both sides.
      down.write(d.subarray(0, left), () => {
        state.kills++;
        cut();
      });
      left = 0;
      up.pause();
    });
    for (const s of pair) {
      s.on('error', cut);
      s.on('close', cut);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    state,
    valve(open: boolean) {
      closedValve = !open;
      for (const [, up] of pairs)
        if (open) up.resume();
        else up.pause();
    },
    cutAll: () => {
      for (const [down, up] of pairs) {
        down.destroy();
        up.destroy();
      }
      pairs.clear();
    },
    close: () =>
      new Promise<void>((r) => {
        for (const [down, up] of pairs) (down.destroy(), up.destroy());
        server.close(() => r());
      }),
  };
}

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Consume a subscription in the background into `events`; `done` resolves to how it ended. */
function collect(iter: AsyncGenerator<EventRecord, void, undefined>) {
  const events: EventRecord[] = [];
  const done = (async () => {
    for await (const e of iter) events.push(e);
  })().then(
    () => undefined,
    (e: unknown) => e,
  );
  return { events, done };
}

const key = (e: EventRecord) => `${e.aggregate_type}/${e.aggregate_id}@${e.version}`;

function expectExactlyOnceInOrder(got: EventRecord[], written: EventRecord[]) {
  const positions = got.map((e) => e.position);
  for (let i = 1; i < positions.length; i++) expect(positions[i]).toBeGreaterThan(positions[i - 1]!);
  const want = [...written].sort((a, b) => a.position - b.position);
  expect(got.map(key)).toEqual(want.map(key));
  expect(got).toEqual(want);
}

describe('event stream', () => {
  let p: Project;
  let server: RunningServer;
  let db: EventDbxClient;
  const fast = { minDelayMs: 5, maxDelayMs: 50 };

  const token = async (...args: string[]) => {
    const r = await p.cli(['token', 'generate', '--group', 'doctors', '--user', 'ann', ...args, '--json']);
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout).token.token as string;
  };
  const subscribers = async () =>
    Number(/^eventdbx_stream_subscribers (\d+)/m.exec(await db.metrics())?.[1] ?? NaN);

  beforeAll(async () => {
    p = await project();
    p.env.EVENTDBX_STREAM_HEARTBEAT_MS = '200';
    server = await startServer(p, ['--restrict=false']);
    db = new EventDbxClient({ url: server.url, token: server.adminToken });
  });
  afterAll(async () => {
    await server?.stop();
    await p?.cleanup();
  });

  it('streams what the token may read, never system events, filtered by aggregate type', async () => {
    const lab = await token('--aggregate', 'lab'); // a system ($audit) event between the others
    const written = [];
    for (let i = 0; i < 6; i++) {
      written.push(await db.append('lab', `l-${i % 2}`, { event_type: 'result', payload: { i } }));
      written.push(await db.append('ward', 'w-1', { event_type: 'moved', payload: { i } }));
    }
    const labOnly = written.filter((e) => e.aggregate_type === 'lab');
    const start = written[0]!.position;

    const ctl = new AbortController();
    const signal = ctl.signal;
    const all = collect(db.subscribe({ from: 1, signal, ...fast }));
    const scoped = collect(
      new EventDbxClient({ url: server.url, token: lab }).subscribe({ from: start, signal, ...fast }),
    );
    const filtered = collect(db.subscribe({ from: start, aggregate: 'ward', signal, ...fast }));
    const last = await db.append('lab', 'l-9', { event_type: 'result', payload: { last: true } });
    const lastWard = await db.append('ward', 'w-9', { event_type: 'moved', payload: { last: true } });
    await until(
      () =>
        all.events.at(-1)?.position === lastWard.position && scoped.events.at(-1)?.position === last.position,
      'the last events',
    );
    await until(() => filtered.events.at(-1)?.position === lastWard.position, 'the last ward event');
    ctl.abort();
    expect(await Promise.all([all.done, scoped.done, filtered.done])).toEqual([
      undefined,
      undefined,
      undefined,
    ]);

    expect(scoped.events).toEqual([...labOnly, last]);
    expect(filtered.events).toEqual([...written.filter((e) => e.aggregate_type === 'ward'), lastWard]);
    expect(all.events.filter((e) => e.position >= start)).toEqual([...written, last, lastWard]);
    expect(all.events.some((e) => e.aggregate_type.startsWith('$'))).toBe(false);
    // The positions skipped are the audit log's (token creation), which exists.
    expect(all.events.length).toBeLessThan(lastWard.position);
    await expect(db.verifyEvent('lab', 'l-9', 1)).resolves.toMatchObject({ event: last });
  });

  it('resumes with Last-Event-ID, sends ids = positions, caught-up, heartbeats, and an id past filtered events', async () => {
    const a = await db.append('resume', 'r-1', { event_type: 'a', payload: {} });
    const b = await db.append('resume', 'r-1', { event_type: 'b', payload: {} });
    const other = await db.append('elsewhere', 'x', { event_type: 'c', payload: {} });
    let later: EventRecord | undefined;
    const ctl = new AbortController();
    const res = await fetch(`${server.url}/v1/events/stream?aggregate=resume`, {
      headers: { authorization: `Bearer ${server.adminToken}`, 'last-event-id': String(a.position) },
      signal: ctl.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = '';
    const dec = new TextDecoder();
    // Caught up at the head, which is filtered out; then a heartbeat moves the resume point past a
    // later filtered event.
    const caughtUp = `id: ${other.position}\nevent: caught-up\ndata: {"position":${other.position}}\n\n`;
    while (!(later && text.includes(': heartbeat') && text.includes(`id: ${later.position}\n\n`))) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value);
      if (!later && text.includes(caughtUp))
        later = await db.append('elsewhere', 'x', { event_type: 'c', payload: {} });
    }
    ctl.abort();
    expect(text.startsWith(`retry: 1000\nid: ${a.position}\n\n`)).toBe(true);
    expect(text.split('caught-up').length).toBe(2);
    expect(text).toContain(`id: ${b.position}\nevent: event\ndata: ${JSON.stringify(b)}\n\n`);
    // Exactly one event: b (a is before the resume point, c is filtered out).
    expect([...text.matchAll(/^id: (\d+)\nevent: event\n/gm)].map((m) => Number(m[1]))).toEqual([b.position]);
    expect(text).not.toContain(`"event_type":"a"`);
    expect(text).not.toContain('"elsewhere"');
  });

  it('tells a rebuild when it has caught up, though the head is an entry it never gets (qa-sdk #9)', async () => {
    const written = [];
    for (let i = 0; i < 3; i++)
      written.push(await db.append('rebuild', 'b-1', { event_type: 'x', payload: { i: String(i) } }));
    await db.createToken({ group: 'nurses', user: 'rebuild', expiration: 600 }); // an audit log entry: the new head
    const head = (await db.health()).events;
    expect(head).toBeGreaterThan(written[2]!.position);
    const stop = new AbortController();
    const got: EventRecord[] = [];
    const caught: Array<{ position: number; seen: number }> = [];
    for await (const e of db.subscribe({
      from: written[0]!.position,
      aggregate: 'rebuild',
      signal: AbortSignal.any([stop.signal, AbortSignal.timeout(5_000)]),
      onCaughtUp: (position) => {
        caught.push({ position, seen: got.length });
        stop.abort();
      },
    }))
      got.push(e);
    expect(caught).toEqual([{ position: head, seen: 3 }]);
    expect(got).toEqual(written);
    // Without `from`: caught up at once. An error of the callback ends the loop with that error.
    const boom = new Error('boom');
    const ended = collect(db.subscribe({ onCaughtUp: () => Promise.reject(boom), ...fast }));
    expect(await ended.done).toBe(boom);
  });

  it('refuses bad requests with typed errors instead of reconnecting', async () => {
    const lab = new EventDbxClient({ url: server.url, token: await token('--aggregate', 'lab') });
    const first = async (it: AsyncGenerator<EventRecord, void, undefined>) => {
      for await (const e of it) return e;
      return undefined;
    };
    const code = (p: Promise<unknown>) =>
      p.then(
        () => 'resolved',
        (e: unknown) => (e instanceof EventDbxApiError ? e.code : String(e)),
      );
    expect(await code(first(db.subscribe({ aggregate: 'Not A Type' })))).toBe(
      'EDBX_ERR_INVALID_AGGREGATE_TYPE',
    );
    expect(await code(first(lab.subscribe({ aggregate: 'ward' })))).toBe('EDBX_ERR_TOKEN_OUT_OF_SCOPE');
    expect(await code(first(new EventDbxClient({ url: server.url, token: '' }).subscribe()))).toBe(
      'EDBX_ERR_TOKEN_MISSING',
    );
    const raw = await fetch(`${server.url}/v1/events/stream?from=-1`, {
      headers: { authorization: `Bearer ${server.adminToken}` },
    });
    expect(raw.status).toBe(400);
    expect(await raw.json()).toMatchObject({ code: 'EDBX_ERR_INVALID_ARGUMENT' });
    // HEAD of an endless stream was never answered: it is 405, GET only.
    const head = await fetch(`${server.url}/v1/events/stream`, {
      method: 'HEAD',
      headers: { authorization: `Bearer ${server.adminToken}` },
      signal: AbortSignal.timeout(10_000),
    });
    expect([head.status, head.headers.get('allow')]).toEqual([405, 'GET']);
  });

  it('ends the stream with a typed error when the token is revoked', async () => {
    const t = await token();
    const sub = collect(new EventDbxClient({ url: server.url, token: t }).subscribe({ ...fast }));
    await until(async () => (await subscribers()) >= 1, 'the subscription');
    const revoked = await p.cli(['token', 'revoke', '--token', t]);
    expect(revoked.code).toBe(0);
    expect(await sub.done).toMatchObject({ code: 'EDBX_ERR_TOKEN_REVOKED', status: 401 });
  });

  it('sends nothing committed after the revoke, even before the next heartbeat', async () => {
    const t = await token();
    const sub = collect(new EventDbxClient({ url: server.url, token: t }).subscribe({ ...fast }));
    await until(async () => (await subscribers()) >= 1, 'the subscription');
    const before = await db.append('revoked', 'r-1', { event_type: 'seen', payload: { n: '1' } });
    await until(() => sub.events.some((e) => e.position === before.position), 'the first event');
    // The revoke and the next append land within a few milliseconds, well inside a heartbeat (200 ms).
    await db.revokeToken(t);
    await db.append('revoked', 'r-1', { event_type: 'secret', payload: { n: '2' } });
    expect(await sub.done).toMatchObject({ code: 'EDBX_ERR_TOKEN_REVOKED' });
    expect(sub.events.filter((e) => e.aggregate_type === 'revoked').map((e) => e.event_type)).toEqual([
      'seen',
    ]);
  });

  it('forgets a client that disconnects, and ends when the consumer breaks out', async () => {
    await until(async () => (await subscribers()) === 0, 'no subscribers');
    const ctl = new AbortController();
    const subs = [1, 2, 3].map(() => collect(db.subscribe({ signal: ctl.signal })));
    await until(async () => (await subscribers()) === 3, 'three subscribers');
    ctl.abort();
    expect(await Promise.all(subs.map((s) => s.done))).toEqual([undefined, undefined, undefined]);
    await until(async () => (await subscribers()) === 0, 'the subscribers to be removed');
    const it = db.subscribe({ from: 1 });
    for await (const _ of it) break;
    await until(async () => (await subscribers()) === 0, 'the broken-out subscriber to be removed');
  });

  it('delivers every event exactly once, in order, under concurrent appends while connections are cut', async () => {
    // A backlog of several catch-up pages, so that connections are still catching up while the
    // writers' commits arrive live.
    const before: EventRecord[] = [];
    for (let t = 0; t < 3; t++)
      before.push(
        ...(await db.transaction(
          Array.from({ length: 500 }, (_, i) => ({
            aggregate_type: 'cut',
            aggregate_id: `seed-${i % 7}`,
            event_type: 'seed',
            payload: { t, i },
          })),
        )),
      );
    const px = await proxy(() => server.port);
    // Each connection dies after 200 bytes to 64 KiB, usually in the middle of an event.
    px.state.budget = () => 200 + Math.floor(Math.random() ** 2 * 65_000);
    const from = before[0]!.position;
    const ctl = new AbortController();
    const sub = collect(
      new EventDbxClient({ url: px.url, token: server.adminToken }).subscribe({
        from,
        signal: ctl.signal,
        ...fast,
      }),
    );
    const writers = Array.from(
      { length: 5 },
      (_, w) => new EventDbxClient({ url: server.url, token: server.adminToken }),
    );
    const written = (
      await Promise.all(
        writers.map(async (c, w) => {
          const mine: EventRecord[] = [];
          for (let i = 0; i < 60; i++) {
            if (i % 10 === 9) {
              mine.push(
                ...(await c.transaction([
                  { aggregate_type: 'cut', aggregate_id: `w${w}-tx`, event_type: 'tx', payload: { i } },
                  {
                    aggregate_type: 'cut',
                    aggregate_id: `shared-${i % 3}`,
                    event_type: 'tx',
                    payload: { w },
                  },
                ])),
              );
            } else {
              mine.push(await c.append('cut', `w${w}-${i % 4}`, { event_type: 'tick', payload: { w, i } }));
            }
          }
          return mine;
        }),
      )
    ).flat();
    const all = [...before, ...written];
    const lastPosition = Math.max(...all.map((e) => e.position));
    await until(
      () => (sub.events.at(-1)?.position ?? 0) >= lastPosition,
      'the subscriber to catch up',
      60_000,
    );
    ctl.abort();
    expect(await sub.done).toBeUndefined();
    await px.close();
    expect(px.state.kills).toBeGreaterThan(5);
    expectExactlyOnceInOrder(sub.events, all);
  });

  it('the catch-up/live boundary neither skips nor repeats, with commits arriving during catch-up', async () => {
    // A backlog of several pages: the connection is still reading the log when live commits arrive.
    const backlog: EventRecord[] = [];
    for (let t = 0; t < 6; t++)
      backlog.push(
        ...(await db.transaction(
          Array.from({ length: 500 }, (_, i) => ({
            aggregate_type: 'edge',
            aggregate_id: `e-${i % 11}`,
            event_type: 'old',
            payload: { t, i },
          })),
        )),
      );
    const ctl = new AbortController();
    const sub = collect(db.subscribe({ from: backlog[0]!.position, signal: ctl.signal }));
    const live: EventRecord[] = [];
    const writers = [0, 1, 2].map(async (w) => {
      while (sub.events.length < backlog.length + 30)
        live.push(await db.append('edge', `live-${w}`, { event_type: 'new', payload: { w } }));
    });
    await Promise.all(writers);
    const last = Math.max(...live.map((e) => e.position));
    await until(() => (sub.events.at(-1)?.position ?? 0) >= last, 'the last live event');
    ctl.abort();
    expect(await sub.done).toBeUndefined();
    expectExactlyOnceInOrder(sub.events, [...backlog, ...live]);
  });

  it('a subscriber whose socket is full while 16 000 events commit still gets each exactly once', async () => {
    const overflows = async () =>
      Number(/^eventdbx_stream_overflows_total (\d+)/m.exec(await db.metrics())?.[1] ?? NaN);
    const overflowsBefore = await overflows();
    const px = await proxy(() => server.port);
    const ctl = new AbortController();
    const head = await db.append('bulk', 'head', { event_type: 'start', payload: {} });
    const it = new EventDbxClient({ url: px.url, token: server.adminToken }).subscribe({
      from: head.position,
      signal: ctl.signal,
      ...fast,
    });
    const got: EventRecord[] = [(await it.next()).value as EventRecord];
    // The proxy stops reading: the server's socket fills, it stops writing, its live buffer overflows.
    px.valve(false);
    const written = [head];
    for (let t = 0; t < 32; t++) {
      written.push(
        ...(await db.transaction(
          Array.from({ length: 500 }, (_, i) => ({
            aggregate_type: 'bulk',
            aggregate_id: `b-${i % 50}`,
            event_type: 'fill',
            payload: { t, i, pad: 'x'.repeat(400) },
          })),
        )),
      );
    }
    px.valve(true);
    const last = written.at(-1)!.position;
    for await (const e of it) {
      got.push(e);
      if (e.position === last) break;
    }
    await px.close();
    expect(await overflows()).toBeGreaterThan(overflowsBefore);
    expectExactlyOnceInOrder(got, written);
  });

  it('stops cleanly with subscribers connected, and the subscriber resumes on the restarted server', async () => {
    let port = server.port;
    const px = await proxy(() => port);
    const first = await db.append('restart', 'r-1', { event_type: 'before', payload: {} });
    const ctl = new AbortController();
    const sub = collect(
      new EventDbxClient({ url: px.url, token: server.adminToken }).subscribe({
        from: first.position,
        signal: ctl.signal,
        ...fast,
      }),
    );
    await until(() => sub.events.length === 1, 'the first event');
    const adminToken = server.adminToken;
    expect(await server.stop()).toBe(0);
    server = await startServer(p, ['--restrict=false']);
    port = server.port;
    db = new EventDbxClient({ url: server.url, token: adminToken });
    const after = [];
    for (let i = 0; i < 5; i++)
      after.push(await db.append('restart', 'r-1', { event_type: 'after', payload: { i } }));
    await until(() => sub.events.length === 6, 'the events after the restart');
    ctl.abort();
    expect(await sub.done).toBeUndefined();
    await px.close();
    expectExactlyOnceInOrder(sub.events, [first, ...after]);
  });
});
