/**
 * One event the destination refuses, in a batch of healthy ones (QA-scale finding 1): the SQL sinks
 * write a batch in one transaction, so its failure names no event. Only the refused event becomes a
 * dead letter; the events around it reach the mirror, in order, without a round of retries each.
 * Real destinations: a SQLite file and the throwaway PostgreSQL of pg-harness.ts.
 */
import Database from 'better-sqlite3';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { EventRecord } from '../../src/core/event.js';
import { type DeliveryHost, configurePlugin, deadLetters } from '../../src/plugins/index.js';
import type { EventStore } from '../../src/store/index.js';
import { tempDirs } from '../helpers/temp.js';
import { FAST, caughtUp, jane, openStore, startHost, statusOf, waitFor } from './fixtures.js';
import { type PgServer, pgQuery, startPostgres } from './pg-harness.js';

let store: EventStore;
let host: DeliveryHost | undefined;
let server: PgServer;
let dir: string;

beforeAll(async () => {
  server = await startPostgres();
});
afterAll(async () => {
  await server?.destroy();
});
const tempDir = tempDirs('edbx-poison-');
beforeEach(async () => {
  store = await openStore();
  dir = await tempDir();
});
afterEach(async () => {
  await host?.stop();
  host = undefined;
  await store.close();
});

const container = (id: string) =>
  store.append(
    { aggregate_type: 'container', aggregate_id: id, event_type: 'registered', payload: { site: 'hamburg' } },
    jane,
  );

/** 2,001 fields: over PostgreSQL's 1600 columns and SQLite's 2000 (with the six fixed ones). */
const wide = () =>
  store.append(
    {
      aggregate_type: 'wide',
      aggregate_id: 'w-1',
      event_type: 'set',
      payload: Object.fromEntries(Array.from({ length: 2001 }, (_, i) => [`f${i}`, '1'])),
    },
    jane,
  );

/** c-1, c-2, c-3, the poison event, c-4, c-5: committed before the plugin exists, so one batch. */
async function batchAround(poison: () => Promise<EventRecord>): Promise<EventRecord> {
  for (const id of ['c-1', 'c-2', 'c-3']) await container(id);
  const bad = await poison();
  for (const id of ['c-4', 'c-5']) await container(id);
  return bad;
}

function sqliteRows(file: string, sql: string): Array<Record<string, unknown>> {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(sql).all() as Array<Record<string, unknown>>;
  } finally {
    db.close();
  }
}

const HEALTHY = ['c-1', 'c-2', 'c-3', 'c-4', 'c-5'].map((id) => ({ id, version: 1 }));

/** The rows of a PostgreSQL mirror's `container` table: id and version. */
const pgContainerRows = async (url: string) =>
  (await pgQuery(url, 'SELECT id, version FROM container ORDER BY id')).map((r) => ({
    id: r.id,
    version: Number(r.version),
  }));

describe('an event over the column limit among healthy ones (QA-scale 1)', () => {
  const mirrors = [
    {
      kind: 'sqlite',
      limit: 'too many columns',
      async target() {
        const file = path.join(dir, 'mirror.db');
        return {
          config: { path: file },
          rows: async () => sqliteRows(file, 'SELECT id, version FROM container ORDER BY id'),
        };
      },
    },
    {
      kind: 'postgres',
      limit: 'SQLSTATE 54011',
      async target() {
        const url = await server.createDatabase();
        return {
          config: { connection: url },
          rows: () => pgContainerRows(url),
        };
      },
    },
  ] as const;

  for (const { kind, limit, target } of mirrors) {
    it(`${kind}: only it is dead-lettered (${limit}), at once; every other event is in the mirror`, async () => {
      const { config, rows } = await target();
      const bad = await batchAround(wide);
      host = await startHost(store);
      await configurePlugin(store, kind, { ...config, ...FAST, max_attempts: 3 }, jane);
      await caughtUp(store, kind);

      const dl = await deadLetters(store, kind);
      expect(dl.dead_letters).toHaveLength(1);
      expect(dl.dead_letters[0]).toMatchObject({
        position: bad.position,
        aggregate_id: 'w-1',
        code: 'EDBX_ERR_PLUGIN_REJECTED',
        attempts: 1,
      });
      expect(dl.dead_letters[0]!.reason).toContain(limit);
      expect(await rows()).toEqual(HEALTHY);
      // A limit is never retried: no round of backoff for the batch, nor for any event in it.
      expect(await statusOf(store, kind)).toMatchObject({ retries: 0, dead_letters: 1, delivered: 5 });
    });
  }
});

describe('an aggregate type whose table name another object holds, among healthy events (read-model QA 1)', () => {
  /** Events of a type whose name `prepare` gave to something else: a table of another shape, an index. */
  const poison = (type: string) =>
    store.append(
      { aggregate_type: type, aggregate_id: 'k-1', event_type: 'made', payload: { a: '1' } },
      jane,
    );
  const mirrors = [
    {
      kind: 'sqlite',
      types: { ledger: 'it has no column "id"', ledger_note: 'there is already an index named ledger_note' },
      async target() {
        const file = path.join(dir, 'mirror.db');
        const db = new Database(file);
        db.exec('CREATE TABLE ledger (note TEXT); CREATE INDEX ledger_note ON ledger (note)');
        db.close();
        return {
          config: { path: file },
          rows: async () => sqliteRows(file, 'SELECT id, version FROM container ORDER BY id'),
        };
      },
    },
    {
      kind: 'postgres',
      // container_pkey: the index of the primary key of container, made in the same batch.
      types: { ledger: 'it has no column "id"', container_pkey: 'it is an index' },
      async target() {
        const url = await server.createDatabase();
        await pgQuery(url, 'CREATE TABLE ledger (note TEXT)');
        return {
          config: { connection: url },
          rows: () => pgContainerRows(url),
        };
      },
    },
  ] as const;

  for (const { kind, types, target } of mirrors) {
    it(`${kind}: each such event is dead-lettered at once, naming the table; every other event is in the mirror`, async () => {
      const { config, rows } = await target();
      const names = Object.keys(types);
      for (const id of ['c-1', 'c-2', 'c-3']) await container(id);
      const bad = [];
      for (const type of names) bad.push(await poison(type));
      for (const id of ['c-4', 'c-5']) await container(id);
      host = await startHost(store);
      await configurePlugin(store, kind, { ...config, ...FAST, max_attempts: 3 }, jane);
      await caughtUp(store, kind);

      const dl = (await deadLetters(store, kind)).dead_letters;
      expect(dl.map((d) => [d.position, d.aggregate_type, d.code, d.attempts])).toEqual(
        bad.map((b) => [b.position, b.aggregate_type, 'EDBX_ERR_PLUGIN_REJECTED', 1]),
      );
      for (const [i, why] of Object.values(types).entries()) expect(dl[i]!.reason).toContain(why);
      expect(await rows()).toEqual(HEALTHY);
      expect(await statusOf(store, kind)).toMatchObject({ retries: 0, dead_letters: 2, delivered: 5 });
    });
  }
});

describe('a batch that fails for one event with an error that may pass (QA-scale 1)', () => {
  /** A trigger refuses `c-bad` with P0001 (raise exception): a failure the sink retries. */
  async function refusingDatabase(): Promise<string> {
    const url = await server.createDatabase();
    await pgQuery(
      url,
      `CREATE TABLE container (id TEXT PRIMARY KEY, version BIGINT NOT NULL, created_at TIMESTAMPTZ,
         created_by TEXT, updated_at TIMESTAMPTZ, updated_by TEXT);
       CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.id = 'c-bad' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$;
       CREATE TRIGGER refuse BEFORE INSERT ON container FOR EACH ROW EXECUTE FUNCTION refuse();`,
    );
    return url;
  }

  it('is retried as a batch, then one event at a time: only the failing event is a dead letter', async () => {
    const url = await refusingDatabase();
    const bad = await batchAround(() => container('c-bad'));
    host = await startHost(store);
    await configurePlugin(store, 'postgres', { connection: url, ...FAST, max_attempts: 3 }, jane);
    await caughtUp(store, 'postgres');

    const dl = await deadLetters(store, 'postgres');
    expect(dl.dead_letters).toHaveLength(1);
    expect(dl.dead_letters[0]).toMatchObject({
      position: bad.position,
      aggregate_id: 'c-bad',
      code: 'EDBX_ERR_PLUGIN_DELIVERY',
      attempts: 3,
    });
    const rows = await pgQuery(url, 'SELECT id, version FROM container ORDER BY id');
    expect(rows.map((r) => ({ id: r.id, version: Number(r.version) }))).toEqual(HEALTHY);
    // One round for the batch, one for the failing event: not one per event before it.
    expect(await statusOf(store, 'postgres')).toMatchObject({ retries: 4, dead_letters: 1, delivered: 5 });
  });

  it('with --on-failure block, blocks at the failing event, the events before it delivered', async () => {
    const url = await refusingDatabase();
    const bad = await batchAround(() => container('c-bad'));
    host = await startHost(store);
    await configurePlugin(
      store,
      'postgres',
      { connection: url, ...FAST, max_attempts: 2, on_failure: 'block', backoff_max_ms: 60_000 },
      jane,
    );
    const s = await waitFor('blocked', async () => {
      const x = await statusOf(store, 'postgres');
      return x.state === 'blocked' ? x : undefined;
    });
    expect(s).toMatchObject({ cursor: bad.position, dead_letters: 0 });
    const rows = await pgQuery(url, 'SELECT id FROM container ORDER BY id');
    expect(rows.map((r) => r.id)).toEqual(['c-1', 'c-2', 'c-3']);
  });
});
