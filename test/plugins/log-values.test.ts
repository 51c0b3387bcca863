/**
 * Payload values never reach the server log nor a dead letter's reason (QA qa-aud item 3: a value that
 * failed a SQL plugin's cast was logged in clear, `… is "HIV-POSITIVE-SECRET", which is not a valid
 * integer`). Every failure path a destination's data can take is driven with a sentinel value: casts,
 * PostgreSQL's data and constraint errors (whose messages and details quote values), a trigger that
 * raises with the row, SQLite's constraints and triggers, and an HTTP receiver that echoes the body.
 */
import Database from 'better-sqlite3';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type DeliveryHost, configurePlugin, deadLetters, mapField } from '../../src/plugins/index.js';
import type { DeadLetter } from '../../src/plugins/types.js';
import type { EventStore } from '../../src/store/index.js';
import { tempDirs } from '../helpers/temp.js';
import {
  FAST,
  type LogLine,
  jane,
  openStore,
  recordingLogger,
  startHost,
  statusOf,
  waitFor,
} from './fixtures.js';
import { type PgServer, pgQuery, startPostgres } from './pg-harness.js';

const SECRET = 'HIV-POSITIVE-SECRET';
const tempDir = tempDirs('edbx-log-values-');

let store: EventStore;
let host: DeliveryHost | undefined;
let log: ReturnType<typeof recordingLogger>;

beforeEach(async () => {
  store = await openStore();
  log = recordingLogger();
  host = await startHost(store, log);
});
afterEach(async () => {
  await host?.stop();
  host = undefined;
  await store.close();
});

const append = (id: string, payload: Record<string, string>) =>
  store.append({ aggregate_type: 'patient', aggregate_id: id, event_type: 'patient-added', payload }, jane);

/** The plugin's one dead letter, once there. */
const deadLetter = (plugin: string): Promise<DeadLetter> =>
  waitFor(`a ${plugin} dead letter`, async () => (await deadLetters(store, plugin)).dead_letters[0]);

/** Everything the plugin left to be read: its log lines, its dead letters and its last error. */
async function traces(plugin: string): Promise<string> {
  const lines = log.lines.filter((l: LogLine) => (l.obj as { plugin?: string }).plugin === plugin);
  expect(lines.length).toBeGreaterThan(0);
  const { dead_letters } = await deadLetters(store, plugin);
  return JSON.stringify({ lines, dead_letters, last_error: (await statusOf(store, plugin)).last_error });
}

describe('values that cannot be cast (qa-aud #3)', () => {
  it('the SQLite cast failure names field, event and type and says how to see the value, never the value', async () => {
    const file = path.join(await tempDir(), 'mirror.db');
    await configurePlugin(store, 'sqlite', { path: file, ...FAST, max_attempts: 1 }, jane);
    await mapField(store, { aggregate: 'patient', field: 'age', datatype: 'integer' }, jane);
    await append('p-1', { age: SECRET });
    const dl = await deadLetter('sqlite');
    expect(dl).toMatchObject({ code: 'EDBX_ERR_PLUGIN_CAST', version: 1 });
    expect(dl.reason).toBe(
      'field "age" of patient/p-1 v1 is not a valid integer (mapped with `plugin map`); values are not ' +
        'logged: see it with `eventdbx aggregate get --aggregate patient --aggregate-id p-1 --version 1`, ' +
        'fix the mapping, then `eventdbx plugin retry sqlite`',
    );
    const all = await traces('sqlite');
    expect(all).toContain('EDBX_ERR_PLUGIN_CAST');
    expect(all).not.toContain(SECRET);
  });

  it('quotes an aggregate id for the shell in the command it shows', async () => {
    const file = path.join(await tempDir(), 'mirror.db');
    await configurePlugin(store, 'sqlite', { path: file, ...FAST, max_attempts: 1 }, jane);
    await mapField(store, { aggregate: 'patient', field: 'age', datatype: 'integer' }, jane);
    await append("o'brien $1", { age: SECRET });
    const dl = await deadLetter('sqlite');
    expect(dl.reason).toContain(`--aggregate-id 'o'\\''brien $1' --version 1\``);
    expect(dl.reason).not.toContain(SECRET);
  });
});

describe('SQLite errors (qa-aud #3)', () => {
  it("keeps SQLite's own constraint messages (they name columns) and never logs a trigger's text", async () => {
    const file = path.join(await tempDir(), 'mirror.db');
    const db = new Database(file);
    db.exec(
      'CREATE TABLE patient (id TEXT PRIMARY KEY, version INTEGER NOT NULL, created_at TEXT, ' +
        'created_by TEXT, updated_at TEXT, updated_by TEXT, ssn TEXT UNIQUE, note TEXT);' +
        "CREATE TRIGGER no_notes BEFORE INSERT ON patient WHEN NEW.note IS NOT NULL BEGIN SELECT RAISE(ABORT, 'refused note ' || NEW.note); END;",
    );
    db.close();
    await configurePlugin(store, 'sqlite', { path: file, ...FAST, max_attempts: 1 }, jane);
    await append('p-1', { ssn: SECRET });
    await append('p-2', { ssn: SECRET }); // the same value: UNIQUE
    await append('p-3', { note: SECRET }); // the trigger quotes it
    const letters = await waitFor('two dead letters', async () => {
      const { dead_letters } = await deadLetters(store, 'sqlite');
      return dead_letters.length === 2 ? dead_letters : undefined;
    });
    expect(letters.map((d) => [d.aggregate_id, d.code])).toEqual([
      ['p-2', 'EDBX_ERR_PLUGIN_REJECTED'],
      ['p-3', 'EDBX_ERR_PLUGIN_REJECTED'],
    ]);
    expect(letters[0]!.reason).toContain('UNIQUE constraint failed: patient.ssn (SQLITE_CONSTRAINT_UNIQUE)');
    expect(letters[1]!.reason).toContain(
      'a trigger or function of the database refused the row (SQLITE_CONSTRAINT_TRIGGER;',
    );
    expect(letters[1]!.reason).toContain(
      '`eventdbx aggregate get --aggregate patient --aggregate-id p-3 --version 1`',
    );
    expect(await traces('sqlite')).not.toContain(SECRET);
  });
});

describe('an HTTP receiver that echoes what it refuses (qa-aud #3)', () => {
  let server: http.Server;
  let url: string;
  beforeEach(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString('utf8')));
      req.on('end', () => res.writeHead(400, { 'content-type': 'application/json' }).end(body));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/events`;
  });
  afterEach(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('records the status it answered, not its body', async () => {
    await configurePlugin(store, 'http', { endpoint: url, ...FAST, max_attempts: 2 }, jane);
    await append('p-1', { diagnosis: SECRET });
    const dl = await deadLetter('http');
    expect(dl.reason).toContain('answered 400');
    expect(await traces('http')).not.toContain(SECRET);
  });
});

describe('PostgreSQL errors (qa-aud #3)', () => {
  let pgServer: PgServer;
  beforeAll(async () => {
    pgServer = await startPostgres();
  });
  afterAll(async () => {
    await pgServer?.destroy();
  });

  const TABLE =
    'CREATE TABLE patient (id TEXT PRIMARY KEY, version BIGINT NOT NULL, created_at TIMESTAMPTZ, ' +
    'created_by TEXT, updated_at TIMESTAMPTZ, updated_by TEXT';

  it('the cast failure never quotes the value', async () => {
    const url = await pgServer.createDatabase();
    await configurePlugin(store, 'postgres', { connection: url, ...FAST, max_attempts: 1 }, jane);
    await mapField(store, { aggregate: 'patient', field: 'age', datatype: 'integer' }, jane);
    await append('p-1', { age: SECRET });
    expect((await deadLetter('postgres')).code).toBe('EDBX_ERR_PLUGIN_CAST');
    expect(await traces('postgres')).not.toContain(SECRET);
  });

  it("replaces the server's message of data and constraint errors by the SQLSTATE and the objects it names", async () => {
    const url = await pgServer.createDatabase();
    // Columns whose types the mapping does not know of (made by hand): PostgreSQL refuses the text,
    // quoting it in its message (22P02); a unique and a check constraint quote the row in their detail.
    await pgQuery(
      url,
      `${TABLE}, age INTEGER, ssn TEXT CONSTRAINT patient_ssn_key UNIQUE, ` +
        "note TEXT CONSTRAINT short_note CHECK (note <> '" +
        SECRET +
        "'))",
    );
    await configurePlugin(store, 'postgres', { connection: url, ...FAST, max_attempts: 1 }, jane);
    await append('p-1', { age: SECRET });
    await append('p-2', { ssn: SECRET });
    await append('p-3', { ssn: SECRET });
    await append('p-4', { note: SECRET });
    const letters = await waitFor('three dead letters', async () => {
      const { dead_letters } = await deadLetters(store, 'postgres');
      return dead_letters.length === 3 ? dead_letters : undefined;
    });
    expect(letters.map((d) => [d.aggregate_id, d.code])).toEqual([
      ['p-1', 'EDBX_ERR_PLUGIN_REJECTED'],
      ['p-3', 'EDBX_ERR_PLUGIN_REJECTED'],
      ['p-4', 'EDBX_ERR_PLUGIN_REJECTED'],
    ]);
    expect(letters[0]!.reason).toContain(
      "postgres refused patient/p-1 v1: invalid text representation (SQLSTATE 22P02; PostgreSQL's message is left out: it can quote values); values are not logged: see them with `eventdbx aggregate get --aggregate patient --aggregate-id p-1 --version 1`",
    );
    expect(letters[1]!.reason).toContain(
      'unique violation (SQLSTATE 23505, table "patient", constraint "patient_ssn_key";',
    );
    expect(letters[2]!.reason).toContain(
      'check violation (SQLSTATE 23514, table "patient", constraint "short_note";',
    );
    // The check constraint's own text holds the sentinel: only its name is shown.
    expect(await traces('postgres')).not.toContain(SECRET);
  });

  it('never logs the text of a trigger that raises with the row, whatever SQLSTATE it gives', async () => {
    const url = await pgServer.createDatabase();
    await pgQuery(
      url,
      `${TABLE}, note TEXT);` +
        'CREATE FUNCTION no_notes() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN ' +
        // An access-rule code, whose messages are otherwise kept: raised in a function, it is not.
        "RAISE EXCEPTION 'refused note %', NEW.note USING ERRCODE = '42501'; END $$;" +
        'CREATE TRIGGER no_notes BEFORE INSERT ON patient FOR EACH ROW EXECUTE FUNCTION no_notes();',
    );
    await configurePlugin(store, 'postgres', { connection: url, ...FAST, max_attempts: 2 }, jane);
    await append('p-1', { note: SECRET });
    const dl = await deadLetter('postgres');
    expect(dl.code).toBe('EDBX_ERR_PLUGIN_DELIVERY');
    expect(dl.reason).toContain(
      "insufficient privilege (SQLSTATE 42501; PostgreSQL's message is left out: it can quote values)",
    );
    expect(await traces('postgres')).not.toContain(SECRET);
  });

  it("keeps the server's message where it names only objects (a missing permission)", async () => {
    const url = await pgServer.createDatabase();
    await pgQuery(url, `${TABLE}, note TEXT); REVOKE ALL ON patient FROM PUBLIC;`);
    const limited = new URL(url);
    const role = `mirror_${limited.pathname.slice(1)}`;
    await pgQuery(
      url,
      `CREATE ROLE ${role} LOGIN; GRANT CONNECT ON DATABASE ${limited.pathname.slice(1)} TO ${role};`,
    );
    limited.username = role;
    await configurePlugin(
      store,
      'postgres',
      { connection: limited.toString(), ...FAST, max_attempts: 1 },
      jane,
    );
    await append('p-1', { note: SECRET });
    const dl = await deadLetter('postgres');
    // The schema's CREATE (PostgreSQL 15) or the table itself, depending on what is checked first.
    expect(dl.reason).toMatch(/: permission denied for (schema public|table patient) \(SQLSTATE 42501\)/);
    expect(await traces('postgres')).not.toContain(SECRET);
  });
});
