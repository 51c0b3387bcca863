/**
 * A PostgreSQL statement stuck past --timeout (read-model QA finding 3): the server cancels it, so a
 * statement waiting on a lock held elsewhere does not leave a backend waiting per retry. A real
 * PostgreSQL, with a table locked by another connection of the test.
 */
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
  waitFor,
} from './fixtures.js';
import { type PgServer, pgQuery, startPostgres } from './pg-harness.js';

let store: EventStore;
let host: DeliveryHost | undefined;
const closing: Array<() => Promise<unknown> | void> = [];

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
