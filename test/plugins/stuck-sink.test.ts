/**
 * A sink that never answers neither blocks the command that stops its plugin nor hides (read-model QA
 * finding 3): moving a SQLite plugin off a stuck target waited for ever for the old sink's thread to
 * close, and the CLI with it (the server kept sending keepalives, so it was never "not answering");
 * and the plugin showed `starting`/`delivering` with no error for as long as it hung. Stuck
 * destinations: a named pipe as the SQLite or JSON file (opening it for writing blocks in the
 * kernel until a reader comes, like a call on a hung network mount; the sinks refuse named pipes,
 * so that refusal (when configuring and when opening), and only it, is switched off here: nothing else on this machine hangs a call on a
 * regular file), and a PostgreSQL table locked by another connection of the test.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { type DeliveryHost, configurePlugin } from '../../src/plugins/index.js';
import type { EventStore } from '../../src/store/index.js';
import { tempDirs } from '../helpers/temp.js';
import {
  FAST,
  type LogLine,
  caughtUp,
  jane,
  openStore,
  recordingLogger,
  startHost,
  statusOf,
  waitFor,
} from './fixtures.js';
import { type PgServer, pgQuery, startPostgres } from './pg-harness.js';

// A named pipe stands in for a hung mount: let the sinks open it (see the header).
vi.mock('../../src/plugins/files.js', async (original) => ({
  ...(await original<typeof import('../../src/plugins/files.js')>()),
  refuseSpecialFile: () => undefined,
  specialKind: () => undefined,
}));

let store: EventStore;
let host: DeliveryHost | undefined;
const closing: Array<() => Promise<unknown> | void> = [];
const tmp = tempDirs('edbx-stuck-');

beforeEach(async () => {
  store = await openStore();
});
afterEach(async () => {
  await host?.stop();
  host = undefined;
  for (const close of closing.splice(0).reverse()) await close();
  await store.close();
});

const append = (id: string) =>
  store.append(
    { aggregate_type: 'patient', aggregate_id: id, event_type: 'patient-added', payload: { name: id } },
    jane,
  );

/** The stop grace of the tests' host (fixtures.startHost), the close grace, and room for a busy machine. */
const BOUND_MS = 2_000 + 3_000 + 7_000;

/** `p`, or an error once `ms` have passed: a command that hangs fails the test instead of stalling it. */
async function returnsWithin<T>(what: string, p: Promise<T>, ms = BOUND_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not return within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A named pipe at `file`: opening it for writing blocks until a reader opens it. */
function pipeAt(file: string): string {
  execFileSync('mkfifo', ['-m', '600', file]);
  // Afterwards, a reader unblocks whatever still waits in open(2), so no thread stays stuck.
  closing.push(
    () =>
      new Promise<void>((resolve) => {
        const fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
        setTimeout(() => {
          closeSync(fd);
          resolve();
        }, 200);
      }),
  );
  return file;
}

/** The lines saying a plugin's stop gave up on its sink (its delivery failures are logged too). */
const stopWarnings = (lines: readonly LogLine[], plugin: string) =>
  lines.filter(
    (l) =>
      l.level === 'warn' &&
      (l.obj as { plugin?: string }).plugin === plugin &&
      l.msg.startsWith('plugin stopped'),
  );

const rowCount = (file: string, table: string): number => {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
  } finally {
    db.close();
  }
};

describe('a stuck SQLite or file target (read-model QA finding 3)', () => {
  it('shows the SQLite plugin unreachable, and moving it returns in bounded time and delivers everything', async () => {
    const dir = await tmp();
    const stuck = pipeAt(path.join(dir, 'stuck.db'));
    const log = recordingLogger();
    host = await startHost(store, log);
    await append('p-1');
    await append('p-2');
    await configurePlugin(store, 'sqlite', { path: stuck, ...FAST, timeout_ms: 500 }, jane);

    const s = await waitFor('the stuck SQLite thread to be reported', async () => {
      const x = await statusOf(store, 'sqlite');
      return x.state === 'unreachable' ? x : undefined;
    });
    expect(s).toMatchObject({ cursor: 1, attempts: 0, dead_letters: 0 });
    expect(s.last_error?.code).toBe('EDBX_ERR_PLUGIN_UNREACHABLE');
    expect(s.last_error?.message).toContain('did not finish within 500 ms (--timeout');

    const good = path.join(dir, 'mirror.db');
    await returnsWithin('moving the plugin', configurePlugin(store, 'sqlite', { path: good }, jane));
    await caughtUp(store, 'sqlite');
    // Nothing was acknowledged by the stuck thread: every event went to the new file.
    expect(rowCount(good, 'patient')).toBe(2);
    const warned = stopWarnings(log.lines, 'sqlite');
    expect(warned).toHaveLength(1);
    expect(warned[0]!.msg).toMatch(/did not close within 3 s: its SQLite thread was stopped/);
    expect((warned[0]!.obj as { doing?: string }).doing).toMatch(/^reading the destination/);
  });

  it('disabling a SQLite plugin whose write is in flight for good returns, with its cursor where it was', async () => {
    const dir = await tmp();
    const stuck = pipeAt(path.join(dir, 'stuck.db'));
    const log = recordingLogger();
    host = await startHost(store, log);
    const first = await append('p-1');
    // A timeout longer than the test: the stop itself has to give up on the call.
    await configurePlugin(store, 'sqlite', { path: stuck, ...FAST, timeout_ms: 600_000 }, jane);
    await waitFor(
      'the delivery to start',
      async () => (await statusOf(store, 'sqlite')).state === 'delivering',
    );

    await returnsWithin('plugin disable', configurePlugin(store, 'sqlite', { disable: true }, jane));
    expect(await statusOf(store, 'sqlite')).toMatchObject({ state: 'disabled', cursor: first.position });
    const warned = stopWarnings(log.lines, 'sqlite');
    expect(warned).toHaveLength(1);
    expect(warned[0]!.msg).toMatch(
      /^plugin stopped while reading the destination .* was still in flight after 2 s; its destination did not close within 3 s: its SQLite thread was stopped; what it had not acknowledged will be delivered again$/,
    );
  });

  it('shows a JSON plugin whose file never opens unreachable instead of starting for ever', async () => {
    const dir = await tmp();
    const stuck = pipeAt(path.join(dir, 'events.jsonl'));
    host = await startHost(store);
    await append('p-1');
    await configurePlugin(store, 'json', { path: stuck, ...FAST, timeout_ms: 500 }, jane);
    const s = await waitFor('the stuck JSON file to be reported', async () => {
      const x = await statusOf(store, 'json');
      return x.state === 'unreachable' && x.retries >= 3 ? x : undefined;
    });
    expect(s).toMatchObject({ cursor: 1, dead_letters: 0 });
    expect(s.last_error?.message).toContain('did not finish within 500 ms');
    await returnsWithin('plugin disable', configurePlugin(store, 'json', { disable: true }, jane));
  });
});

describe('a PostgreSQL statement that waits on a lock (read-model QA finding 3)', () => {
  let server: PgServer;
  beforeAll(async () => {
    server = await startPostgres();
  }, 120_000);
  afterAll(async () => {
    await server?.destroy();
  });

  /** A database the plugin has delivered one event to, and a connection holding its table locked. */
  async function locked(timeoutMs: number, log = recordingLogger()) {
    const url = await server.createDatabase();
    host = await startHost(store, log);
    await append('p-1');
    await configurePlugin(store, 'postgres', { connection: url, ...FAST, timeout_ms: timeoutMs }, jane);
    await caughtUp(store, 'postgres');
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE patient IN ACCESS EXCLUSIVE MODE');
    closing.push(() => holder.end().catch(() => undefined));
    const { position } = await append('p-2');
    return { url, holder, log, position };
  }

  const waitingOnLocks = async (url: string) =>
    Number(
      (
        await pgQuery(
          url,
          "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'eventdbx' AND wait_event_type = 'Lock'",
        )
      )[0]!.n,
    );

  it('disabling the plugin returns in bounded time, and the event is delivered once enabled again', async () => {
    const { url, holder, log, position } = await locked(600_000);
    await waitFor('the insert to wait on the lock', async () => (await waitingOnLocks(url)) === 1);

    await returnsWithin('plugin disable', configurePlugin(store, 'postgres', { disable: true }, jane));
    expect(await statusOf(store, 'postgres')).toMatchObject({ state: 'disabled', cursor: position });
    const warned = stopWarnings(log.lines, 'postgres');
    expect(warned).toHaveLength(1);
    expect(warned[0]!.msg).toContain(`plugin stopped while delivering position ${position} (for `);
    expect(warned[0]!.msg).toContain('was still in flight after 2 s');
    expect(warned[0]!.msg).toContain('its PostgreSQL connections were cut (1 in use)');

    await holder.query('COMMIT');
    await configurePlugin(store, 'postgres', {}, jane);
    await caughtUp(store, 'postgres');
    expect(await pgQuery(url, 'SELECT id FROM patient ORDER BY id')).toEqual([{ id: 'p-1' }, { id: 'p-2' }]);
  });

  it('a statement past --timeout is cancelled by the server: unreachable, no backend left waiting per retry', async () => {
    const { url, holder, position } = await locked(1_000);
    const s = await waitFor('the timed-out statement to be retried', async () => {
      const x = await statusOf(store, 'postgres');
      return x.state === 'unreachable' && x.retries >= 4 ? x : undefined;
    });
    expect(s).toMatchObject({ cursor: position, attempts: 0, dead_letters: 0 });
    expect(s.last_error?.code).toBe('EDBX_ERR_PLUGIN_UNREACHABLE');
    expect(s.last_error?.message).toContain('SQLSTATE 57014');
    // The driver giving up alone would leave each timed-out statement's backend waiting on the lock.
    expect(await waitingOnLocks(url)).toBeLessThanOrEqual(1);

    await holder.query('COMMIT');
    await caughtUp(store, 'postgres');
    expect(await pgQuery(url, 'SELECT id FROM patient ORDER BY id')).toEqual([{ id: 'p-1' }, { id: 'p-2' }]);
  });
});
