/**
 * A sink that never answers does not hide (read-model QA finding 3): the plugin showed
 * `starting`/`delivering` with no error for as long as its destination hung. Real stuck destinations:
 * a named pipe as the JSON file (opening it for writing blocks in the kernel until a reader comes,
 * like a call on a hung network mount), and a PostgreSQL table locked by another connection of the
 * test.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type DeliveryHost, configurePlugin } from '../../src/plugins/index.js';
import type { EventStore } from '../../src/store/index.js';
import {
  FAST,
  caughtUp,
  jane,
  openStore,
  recordingLogger,
  startHost,
  statusOf,
  tempDirs,
  waitFor,
} from './fixtures.js';
import { type PgServer, pgQuery, startPostgres } from './pg-harness.js';

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
    {
      aggregate_type: 'patient',
      aggregate_id: id,
      event_type: 'patient-added',
      payload: { name: id },
    },
    jane,
  );

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

describe('a stuck file target (read-model QA finding 3)', () => {
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
