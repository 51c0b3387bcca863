/**
 * Delivery under failure (issue 6): a destination that errors and recovers, one that stays broken
 * (dead letters, blocking), PostgreSQL stopped during appends and started again, values that cannot be
 * cast, and a stuck destination that must not hold up appends or other plugins.
 */
import Database from 'better-sqlite3';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  type DeliveryHost,
  configurePlugin,
  deadLetters,
  mapField,
  pluginStatus,
  removePlugin,
  retryPlugin,
} from '../../src/plugins/index.js';
import type { EventStore } from '../../src/store/index.js';
import {
  FAST,
  type HttpReceiver,
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
import { freePort } from '../helpers/cli.js';
import { tempDirs } from '../helpers/temp.js';
import { type PgServer, pgQuery, startPostgres } from './pg-harness.js';

const ev = (id: string, payload: Record<string, string>, type = 'patient') => ({
  aggregate_type: type,
  aggregate_id: id,
  event_type: `${type}-updated`,
  payload,
});

let store: EventStore;
let host: DeliveryHost | undefined;
let rx: HttpReceiver;

const tempDir = tempDirs('edbx-faults-');
beforeEach(async () => {
  store = await openStore();
  rx = await httpReceiver();
});
afterEach(async () => {
  await host?.stop();
  host = undefined;
  await rx.close();
  await store.close();
});

const ids = (records: ReadonlyArray<{ metadata: { event_id: string } }>) =>
  records.map((r) => r.metadata.event_id);

describe('HTTP destination that fails, then recovers', () => {
  it('answers 500 to the first attempts: every event arrives, once, in order (issue 6)', async () => {
    rx.respond = (_body, n) => (n < 7 ? 500 : 200);
    host = await startHost(store);
    await configurePlugin(store, 'http', { endpoint: rx.url, ...FAST }, jane);
    for (let i = 0; i < 30; i++) await store.append(ev(`p-${i % 4}`, { seq: String(i) }), jane);
    await caughtUp(store, 'http');
    expect(ids(rx.accepted)).toEqual(ids(await userEvents(store)));
    expect(rx.requests.filter((r) => r.status === 500)).toHaveLength(7);
    const s = await statusOf(store, 'http');
    expect(s).toMatchObject({ dead_letters: 0, retries: 7, delivered: 30 });
    expect(s.last_error?.message).toContain('answered 500');
  });

  it('a new target starts without the last error of the old one; recovery alone keeps it (it carries its time)', async () => {
    rx.respond = (_body, n) => (n < 3 ? 500 : 200);
    host = await startHost(store);
    await configurePlugin(store, 'http', { endpoint: rx.url, ...FAST }, jane);
    await store.append(ev('p-1', { seq: '1' }), jane);
    await caughtUp(store, 'http');
    expect((await statusOf(store, 'http')).last_error?.message).toContain('answered 500');
    await configurePlugin(store, 'http', { endpoint: `${rx.url}/v2`, ...FAST }, jane);
    await store.append(ev('p-1', { seq: '2' }), jane);
    await caughtUp(store, 'http');
    expect((await statusOf(store, 'http')).last_error).toBeUndefined();
  });

  it('fails every event twice before accepting it: still all of them, in order', async () => {
    const tries = new Map<string, number>();
    rx.respond = (body) => {
      const n = (tries.get(body.metadata.event_id) ?? 0) + 1;
      tries.set(body.metadata.event_id, n);
      return n <= 2 ? 503 : 201;
    };
    host = await startHost(store);
    await configurePlugin(store, 'http', { endpoint: rx.url, ...FAST }, jane);
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => store.append(ev(`p-${i % 3}`, { seq: String(i) }), jane)),
    );
    await caughtUp(store, 'http');
    expect(ids(rx.accepted)).toEqual(ids(await userEvents(store)));
    expect([...tries.values()].every((n) => n === 3)).toBe(true);
  });
});

const poison = (body: { payload: Record<string, string> }) => body.payload.poison === 'yes';

describe('HTTP destination that keeps failing for one event', () => {
  it('dead-letters it after max attempts, delivers the rest in order, and retry delivers it later', async () => {
    let broken = true;
    rx.respond = (body) => (broken && poison(body) ? 500 : 200);
    host = await startHost(store);
    await configurePlugin(store, 'http', { endpoint: rx.url, ...FAST, max_attempts: 3 }, jane);
    await store.append(ev('p-1', { a: '1' }), jane);
    const bad = await store.append(ev('p-2', { poison: 'yes' }), jane);
    await store.append(ev('p-3', { a: '3' }), jane);
    await caughtUp(store, 'http');

    const all = await userEvents(store);
    expect(ids(rx.accepted)).toEqual(ids(all.filter((e) => e.position !== bad.position)));
    const dl = await deadLetters(store, 'http');
    expect(dl.total).toBe(1);
    expect(dl.dead_letters[0]).toMatchObject({
      position: bad.position,
      aggregate_id: 'p-2',
      event_id: bad.metadata.event_id,
      attempts: 3,
      code: 'EDBX_ERR_PLUGIN_DELIVERY',
    });
    expect(dl.dead_letters[0]!.reason).toContain('answered 500');
    // HTTP names the event that failed (one request each): no second round to isolate it.
    expect((await statusOf(store, 'http')).retries).toBe(2);

    broken = false;
    const r = await retryPlugin(store, 'http', jane);
    expect(r).toMatchObject({ running: true, outcome: { retried: 1, delivered: 1, failed: 0 } });
    expect((await deadLetters(store, 'http')).total).toBe(0);
    expect(ids(rx.accepted).at(-1)).toBe(bad.metadata.event_id);
  });

  it('with --on-failure block, stops at the event (nothing after it) until it goes through', async () => {
    let broken = true;
    rx.respond = (body) => (broken && poison(body) ? 500 : 200);
    host = await startHost(store);
    await configurePlugin(
      store,
      'http',
      { endpoint: rx.url, ...FAST, max_attempts: 2, on_failure: 'block', backoff_max_ms: 60_000 },
      jane,
    );
    await store.append(ev('p-1', { a: '1' }), jane);
    const bad = await store.append(ev('p-2', { poison: 'yes' }), jane);
    await store.append(ev('p-3', { a: '3' }), jane);
    const s = await waitFor('blocked', async () => {
      const x = await statusOf(store, 'http');
      return x.state === 'blocked' ? x : undefined;
    });
    expect(s).toMatchObject({ cursor: bad.position, dead_letters: 0, lag: store.size - bad.position + 1 });
    expect(rx.accepted.map((e) => e.aggregate_id)).toEqual(['p-1']);

    broken = false;
    await retryPlugin(store, 'http', jane); // retries the blocked event now, not after the long backoff
    await caughtUp(store, 'http');
    expect(ids(rx.accepted)).toEqual(ids(await userEvents(store)));
  });
});

describe('a plugin blocked on an event', () => {
  it('shows blocked while it tries the event again, not delivering (qa-retest #2)', async () => {
    // Each attempt at the poison event takes a while, as against a slow destination.
    rx.respond = async (body) =>
      poison(body) ? new Promise<number>((r) => setTimeout(() => r(500), 150)) : 200;
    host = await startHost(store);
    await configurePlugin(
      store,
      'http',
      { endpoint: rx.url, ...FAST, max_attempts: 1, on_failure: 'block', backoff_max_ms: 20 },
      jane,
    );
    await store.append(ev('p-1', { poison: 'yes' }), jane);
    await waitFor('blocked', async () =>
      (await statusOf(store, 'http')).state === 'blocked' ? true : undefined,
    );
    const states = new Set<string>();
    for (let i = 0; i < 40; i++) {
      states.add((await statusOf(store, 'http')).state);
      await new Promise((r) => setTimeout(r, 10));
    }
    expect([...states]).toEqual(['blocked']);
  });
});

describe('a stuck destination', () => {
  it('never holds up appends nor the other plugins', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    rx.respond = async () => {
      await gate;
      return 200;
    };
    const dir = await tempDir();
    try {
      host = await startHost(store);
      await configurePlugin(store, 'http', { endpoint: rx.url, ...FAST, timeout_ms: 60_000 }, jane);
      await configurePlugin(store, 'json', { path: path.join(dir, 'out.jsonl') }, jane);
      for (let i = 0; i < 25; i++) await store.append(ev(`p-${i}`, { i: String(i) }), jane);
      await caughtUp(store, 'json');
      const lines = (await readFile(path.join(dir, 'out.jsonl'), 'utf8')).trim().split('\n');
      expect(lines).toHaveLength(25);
      const http = await statusOf(store, 'http');
      expect(http.delivered).toBe(0);
      expect(http.lag).toBeGreaterThanOrEqual(25);
      release();
      await caughtUp(store, 'http');
      expect(rx.accepted).toHaveLength(25);
    } finally {
      release();
    }
  });
});

describe('PostgreSQL and SQLite with mapped types', () => {
  let server: PgServer;
  beforeAll(async () => {
    server = await startPostgres({ own: true }); // this suite stops and restarts the server
  });
  afterAll(async () => {
    await server?.destroy();
  });

  it('PostgreSQL stopped during appends, then restarted: the table catches up to the exact final state (issue 6)', async () => {
    const url = await server.createDatabase();
    await mapField(store, { aggregate: 'patient', field: 'visits', datatype: 'integer' }, jane);
    host = await startHost(store);
    await configurePlugin(
      store,
      'postgres',
      { connection: url, ...FAST, backoff_max_ms: 200, max_attempts: 1000 },
      jane,
    );
    const write = (n: number, from = 0) =>
      Promise.all(
        Array.from({ length: n }, (_, k) =>
          store.append(
            ev(`p-${(from + k) % 9}`, { visits: String(from + k), name: `name ${from + k}` }),
            jane,
          ),
        ),
      );
    await write(40);
    await server.stop();
    await write(60, 40); // appends succeed while the destination is down
    const down = await waitFor('a delivery failure', async () => {
      const s = await statusOf(store, 'postgres');
      return s.last_error && s.lag > 0 ? s : undefined;
    });
    expect(down.last_error!.code).toBe('EDBX_ERR_PLUGIN_UNREACHABLE');
    await server.start();
    await write(20, 100);
    await caughtUp(store, 'postgres');

    const rows = await pgQuery(url, 'SELECT id, version, visits, name FROM patient ORDER BY id');
    const expected = [];
    for (const a of await store.list({ type: 'patient' })) {
      const v = await store.aggregate('patient', a.aggregate_id);
      expected.push({
        id: a.aggregate_id,
        version: String(v.version),
        visits: Number(v.state.visits),
        name: v.state.name,
      });
    }
    expect(rows).toEqual(expected.sort((x, y) => x.id.localeCompare(y.id)));
    expect((await statusOf(store, 'postgres')).dead_letters).toBe(0);
  });

  it('PostgreSQL stopped again and again while transactions are open: the process survives, rows catch up', async () => {
    const url = await server.createDatabase();
    host = await startHost(store);
    await configurePlugin(
      store,
      'postgres',
      { connection: url, ...FAST, backoff_max_ms: 100, max_attempts: 1000 },
      jane,
    );
    let writing = true;
    const writers = Array.from({ length: 8 }, async (_, w) => {
      for (let n = 0; writing; n++) await store.append(ev(`p-${w}-${n % 20}`, { n: String(n) }), jane);
    });
    // A fast shutdown terminates backends that are inside the sink's transactions. Before the fix, the
    // checked-out connection emitted an unhandled 'error' and the process ended (every cycle, here).
    for (let cycle = 0; cycle < 3; cycle++) {
      await waitFor('deliveries', async () => (await statusOf(store, 'postgres')).delivered > 0 || undefined);
      await new Promise((r) => setTimeout(r, 300));
      await server.stop();
      await server.start();
    }
    writing = false;
    await Promise.all(writers);
    await caughtUp(store, 'postgres');
    const rows = await pgQuery(url, 'SELECT id, version, n FROM patient ORDER BY id');
    const expected = [];
    for (const a of await store.list({ type: 'patient' })) {
      const v = await store.aggregate('patient', a.aggregate_id);
      expected.push({ id: a.aggregate_id, version: String(v.version), n: v.state.n });
    }
    expect(rows).toEqual(expected.sort((x, y) => x.id.localeCompare(y.id)));
    expect((await statusOf(store, 'postgres')).dead_letters).toBe(0);
  });

  it('casts values to the mapped column types and dead-letters a value that cannot be cast, naming its field', async () => {
    const url = await server.createDatabase();
    const dir = await tempDir();
    const file = path.join(dir, 'mirror.db');
    // Mapped while the plugins run: the change reaches them without a restart.
    host = await startHost(store);
    await configurePlugin(store, 'postgres', { connection: url, ...FAST }, jane);
    await configurePlugin(store, 'sqlite', { path: file, ...FAST }, jane);
    for (const [field, datatype] of [
      ['age', 'integer'],
      ['active', 'boolean'],
      ['born', 'date'],
      ['founded', 'date'],
      ['seen', 'timestamp'],
      ['score', 'numeric(5,2)'],
      ['big', 'bigint'],
      ['meta', 'jsonb'],
    ])
      await mapField(store, { aggregate: 'patient', field: field!, datatype: datatype! }, jane);
    const m = await mapField(
      store,
      { aggregate: 'patient', field: 'ref', datatype: 'uuid', plugin: 'postgres' },
      jane,
    );
    expect(m).toMatchObject({ running: true, mapping: { plugin: 'postgres', datatype: 'uuid' } });
    await store.append(
      ev('p-1', {
        age: '42',
        active: 'yes',
        born: '1990-02-28',
        founded: '0099-12-31',
        seen: '2024-12-01T18:22:43.512345+01:00',
        score: '12.50',
        big: '9007199254740993',
        meta: '{"a":[1,2]}',
        ref: '45C3013E-9B95-4ED0-9AF9-1A465F81D3CF',
        name: 'Jane',
      }),
      jane,
    );
    const bad = await store.append(ev('p-1', { age: 'forty-two' }), jane);
    await store.append(ev('p-1', { name: 'Jane Doe' }), jane);
    await store.append(ev('p-2', { age: '', name: 'Empty age' }), jane);
    await caughtUp(store, 'postgres');
    await caughtUp(store, 'sqlite');

    const [row] = await pgQuery(url, "SELECT * FROM patient WHERE id = 'p-1'");
    expect(row).toMatchObject({
      version: '3',
      age: 42,
      active: true,
      score: '12.50',
      big: '9007199254740993',
      meta: { a: [1, 2] },
      ref: '45c3013e-9b95-4ed0-9af9-1a465f81d3cf',
      name: 'Jane Doe',
    });
    expect((row!.born as Date).getFullYear()).toBe(1990);
    // Microseconds kept, years before 100 taken as written (qa-time #7).
    const [exact] = await pgQuery(
      url,
      `SELECT to_char(seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS seen, founded::text AS founded
       FROM patient WHERE id = 'p-1'`,
    );
    expect(exact).toEqual({ seen: '2024-12-01T17:22:43.512345', founded: '0099-12-31' });
    const [p2] = await pgQuery(url, "SELECT age, name FROM patient WHERE id = 'p-2'");
    expect(p2).toEqual({ age: null, name: 'Empty age' });

    for (const plugin of ['postgres', 'sqlite']) {
      const dl = await deadLetters(store, plugin);
      expect(dl.dead_letters).toHaveLength(1);
      expect(dl.dead_letters[0]).toMatchObject({
        position: bad.position,
        code: 'EDBX_ERR_PLUGIN_CAST',
        attempts: 1,
      });
      expect(dl.dead_letters[0]!.reason).toContain('field "age" of patient/p-1 v2 is not a valid integer');
      expect(dl.dead_letters[0]!.reason).not.toContain('forty-two');
    }

    const db = new Database(file, { readonly: true });
    try {
      const r = db.prepare("SELECT * FROM patient WHERE id = 'p-1'").get() as Record<string, unknown>;
      expect(r).toMatchObject({
        version: 3,
        age: 42,
        active: 1,
        score: 12.5,
        name: 'Jane Doe',
        ref: '45C3013E-9B95-4ED0-9AF9-1A465F81D3CF',
        seen: '2024-12-01T17:22:43.512345Z',
        founded: '0099-12-31',
      });
      const types = db.prepare('PRAGMA table_info(patient)').all() as Array<{ name: string; type: string }>;
      expect(Object.fromEntries(types.map((t) => [t.name, t.type]))).toMatchObject({
        age: 'INTEGER',
        active: 'INTEGER',
        score: 'NUMERIC',
        name: 'TEXT',
      });
    } finally {
      db.close();
    }
  });
});

describe('plugin administration', () => {
  it('retry recorded while no server runs happens when the host starts', async () => {
    rx.respond = () => 500;
    host = await startHost(store);
    await configurePlugin(store, 'http', { endpoint: rx.url, ...FAST, max_attempts: 1 }, jane);
    const e = await store.append(ev('p-1', { a: '1' }), jane);
    await waitFor('a dead letter', async () => (await deadLetters(store, 'http')).total === 1);
    await host.stop();
    host = undefined;
    expect(await retryPlugin(store, 'http', jane)).toEqual({ plugin: 'http', running: false, queued: 1 });
    rx.respond = () => 200;
    host = await startHost(store);
    await waitFor('the retried event', () => rx.accepted.length === 1);
    expect(rx.accepted[0]!.metadata.event_id).toBe(e.metadata.event_id);
    await waitFor('no dead letters', async () => (await deadLetters(store, 'http')).total === 0);
  });

  it('remove stops delivery and forgets the cursor and dead letters; actions are audited', async () => {
    host = await startHost(store);
    await configurePlugin(store, 'http', { endpoint: rx.url, ...FAST }, jane);
    await store.append(ev('p-1', { a: '1' }), jane);
    await caughtUp(store, 'http');
    await removePlugin(store, 'http', jane);
    await store.append(ev('p-2', { a: '2' }), jane);
    await expect(deadLetters(store, 'http')).rejects.toMatchObject({ code: 'EDBX_ERR_PLUGIN_NOT_FOUND' });
    expect((await pluginStatus(store)).plugins).toEqual([]);
    // Added again, it starts over from the first event.
    await configurePlugin(store, 'http', { endpoint: rx.url, ...FAST }, jane);
    await caughtUp(store, 'http');
    expect(rx.accepted.map((r) => r.aggregate_id)).toEqual(['p-1', 'p-1', 'p-2']);
    expect((await store.auditLog()).map((a) => a.event_type)).toEqual([
      'plugin-configured',
      'plugin-removed',
      'plugin-configured',
    ]);
  });
});

describe('TCP destination that goes away', () => {
  it('retries while nothing listens, reconnects when the receiver closes the connection, keeps order', async () => {
    const port = await freePort(); // nothing listens there yet
    host = await startHost(store);
    await configurePlugin(store, 'tcp', { host: '127.0.0.1', port, ...FAST, max_attempts: 1000 }, jane);
    for (let i = 1; i <= 3; i++) await store.append(ev(`p-${i}`, { a: String(i) }), jane);
    const refused = await waitFor(
      'a refused connection',
      async () => (await statusOf(store, 'tcp')).last_error,
    );
    expect(refused.message).toContain(`127.0.0.1:${port}`);
    const tcp = await tcpReceiver(port);
    try {
      await caughtUp(store, 'tcp');
      expect(tcp.connections()).toBe(1);
      tcp.endConnections(); // the receiver says goodbye: the next batch goes over a new connection
      for (let i = 4; i <= 6; i++) await store.append(ev(`p-${i}`, { a: String(i) }), jane);
      await caughtUp(store, 'tcp');
      await waitFor('every line', () => tcp.lines.length >= 6);
      const got = tcp.lines.map(
        (l) => (JSON.parse(l) as { metadata: { event_id: string } }).metadata.event_id,
      );
      expect([...new Set(got)]).toEqual(ids(await userEvents(store)));
      expect(tcp.connections()).toBe(2);
    } finally {
      await tcp.close();
    }
  });
});

describe('delivery error reasons (QA item 7)', () => {
  it('label only PostgreSQL errors as SQLSTATE, and mention retries only when there were some', async () => {
    const port = await freePort(); // nothing listens: connection refused
    const dir = await tempDir();
    await configurePlugin(
      store,
      'postgres',
      { connection: `postgres://u@127.0.0.1:${port}/db`, ...FAST, max_attempts: 1 },
      jane,
    );
    await configurePlugin(store, 'http', { endpoint: rx.url, ...FAST, max_attempts: 2 }, jane);
    // A file that cannot be opened (a directory took its name): tried once, then dead-lettered.
    const file = path.join(dir, 'events.jsonl');
    await configurePlugin(store, 'json', { path: file, ...FAST, max_attempts: 1 }, jane);
    await mkdir(file);
    host = await startHost(store);
    rx.respond = () => 500;
    await store.append(ev('p-1', { a: '1' }), jane);
    // Unreachable: retried without counting attempts, never dead-lettered (qa-dev #5).
    const pg = await waitFor(
      'a postgres failure',
      async () => (await statusOf(store, 'postgres')).last_error,
    );
    expect(pg.message).toContain('ECONNREFUSED');
    expect(pg.message).not.toContain('SQLSTATE');
    const json = await waitFor(
      'a json dead letter',
      async () => (await deadLetters(store, 'json')).dead_letters[0],
    );
    expect(json.attempts).toBe(1);
    expect(json.reason).not.toContain('retried');
    const http = await waitFor(
      'an http dead letter',
      async () => (await deadLetters(store, 'http')).dead_letters[0],
    );
    expect(http.attempts).toBe(2);
    expect(http.reason).toContain('answered 500 (2 attempts, retried with backoff)');
  });
});

describe('plugin status figures (QA item 8)', () => {
  it('counts dead letters delivered by retry as delivered, and forgets the last error when the target changes', async () => {
    rx.respond = () => 500;
    host = await startHost(store);
    await configurePlugin(store, 'http', { endpoint: rx.url, ...FAST, max_attempts: 1 }, jane);
    await store.append(ev('p-1', { a: '1' }), jane);
    await waitFor('a dead letter', async () => (await deadLetters(store, 'http')).total === 1);
    rx.respond = () => 200;
    expect((await retryPlugin(store, 'http', jane)).outcome).toMatchObject({ delivered: 1 });
    const after = await statusOf(store, 'http');
    expect(after).toMatchObject({ delivered: 1, dead_letters: 0 });
    // Kept after recovery (it shows when it happened), gone once the plugin points elsewhere.
    expect(after.last_error?.at).toEqual(expect.any(String));
    await configurePlugin(store, 'http', { endpoint: `${rx.url}?v=2` }, jane);
    expect((await statusOf(store, 'http')).last_error).toBeUndefined();
    await configurePlugin(store, 'http', { disable: true }, jane);
    expect((await statusOf(store, 'http')).last_error).toBeUndefined();
  });
});
