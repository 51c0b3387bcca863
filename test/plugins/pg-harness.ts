/**
 * A real PostgreSQL for the plugin tests: a throwaway cluster made with the machine's PostgreSQL
 * server binaries (initdb + pg_ctl; as the `postgres` OS user when running as root, since PostgreSQL
 * refuses to run as root), listening on 127.0.0.1 on a free port with trust authentication, removed
 * afterwards. Set EVENTDBX_TEST_PG_URL to use an existing server instead (its role needs CREATEDB).
 * There is no skip: without PostgreSQL the tests fail, saying what to install.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from '../helpers/cli.js';

export interface PgServer {
  /** URL of the maintenance database (`postgres`). */
  readonly url: string;
  /** True when this harness made the cluster (so it can stop and start it). */
  readonly owned: boolean;
  /** A fresh, empty database; returns its URL. */
  createDatabase(): Promise<string>;
  /** Stop the server (fast shutdown: connections are cut). Owned clusters only. */
  stop(): Promise<void>;
  /** Start it again on the same port. Owned clusters only. */
  start(): Promise<void>;
  /** Stop and remove the cluster (owned), or just forget the server (external). */
  destroy(): Promise<void>;
}

/** The directory of initdb/pg_ctl: $EVENTDBX_TEST_PG_BIN, PostgreSQL 15, any other version, or pg_config. */
export function findPgBin(): string {
  const candidates: string[] = [];
  if (process.env.EVENTDBX_TEST_PG_BIN) candidates.push(process.env.EVENTDBX_TEST_PG_BIN);
  candidates.push('/usr/lib/postgresql/15/bin');
  if (existsSync('/usr/lib/postgresql')) {
    for (const v of readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a)))
      candidates.push(`/usr/lib/postgresql/${v}/bin`);
  }
  try {
    candidates.push(execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim());
  } catch {
    // no pg_config on PATH
  }
  const found = candidates.find(
    (d) => existsSync(path.join(d, 'initdb')) && existsSync(path.join(d, 'pg_ctl')),
  );
  if (!found) {
    throw new Error(
      'PostgreSQL server binaries (initdb, pg_ctl) not found: install PostgreSQL 15 ' +
        '(e.g. `apt-get install postgresql-15`), set EVENTDBX_TEST_PG_BIN to their directory, ' +
        'or set EVENTDBX_TEST_PG_URL to a server whose role may CREATE DATABASE',
    );
  }
  return found;
}

function osUser(name: string): { uid: number; gid: number } {
  try {
    const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new Error(
      `the tests run as root, and PostgreSQL refuses to: create the '${name}' OS user (installing the postgresql package does), or set EVENTDBX_TEST_PG_URL`,
    );
  }
}

let counter = 0;

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** The rows `sql` answers on the database at `url` (one connection, closed after). */
export const pgQuery = (url: string, sql: string): Promise<Array<Record<string, unknown>>> =>
  withClient(url, async (c) => (await c.query(sql)).rows as Array<Record<string, unknown>>);

function databaseUrl(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

async function createDatabase(url: string): Promise<string> {
  const db = `edbx_test_${process.pid}_${++counter}_${Date.now().toString(36)}`;
  await withClient(url, (c) => c.query(`CREATE DATABASE ${db}`));
  return databaseUrl(url, db);
}

/**
 * Start a throwaway cluster, or use EVENTDBX_TEST_PG_URL. `own: true` always starts a cluster (tests
 * that stop and restart the server).
 */
export async function startPostgres(options: { own?: boolean } = {}): Promise<PgServer> {
  const external = options.own ? undefined : process.env.EVENTDBX_TEST_PG_URL;
  if (external) {
    const notOwned = async () => {
      throw new Error('EVENTDBX_TEST_PG_URL is an external server: it cannot be stopped by the tests');
    };
    return {
      url: external,
      owned: false,
      createDatabase: () => createDatabase(external),
      stop: notOwned,
      start: notOwned,
      destroy: async () => undefined,
    };
  }

  const bin = findPgBin();
  const root = process.getuid?.() === 0;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'edbx-pg-'));
  if (root) {
    const { uid, gid } = osUser('postgres');
    await chown(dir, uid, gid);
  }
  const data = path.join(dir, 'data');
  const logFile = path.join(dir, 'server.log');
  const port = await freePort();

  const run = (tool: string, args: string[]) => {
    const exe = path.join(bin, tool);
    const [cmd, argv] = root ? ['runuser', ['-u', 'postgres', '--', exe, ...args]] : [exe, args];
    const r = spawnSync(cmd, argv, { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) {
      const log = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-2000) : '';
      throw new Error(
        `${tool} ${args.join(' ')} failed (${r.status ?? r.error?.message}):\n${r.stderr}${r.stdout}\n${log}`,
      );
    }
  };
  const serverOptions = [
    `-p ${port}`,
    `-k ${dir}`,
    '-c listen_addresses=127.0.0.1',
    // Throwaway data: no need to survive a power cut, and this keeps the tests quick.
    '-c fsync=off',
    '-c synchronous_commit=off',
    '-c full_page_writes=off',
  ].join(' ');
  const start = () =>
    run('pg_ctl', ['-D', data, '-l', logFile, '-w', '-t', '60', '-o', serverOptions, 'start']);
  const stop = (mode: 'fast' | 'immediate') =>
    run('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', '60', 'stop']);

  run('initdb', [
    '-D',
    data,
    '-A',
    'trust',
    '-U',
    'postgres',
    '-E',
    'UTF8',
    '--locale=C',
    '--no-sync',
    '--no-instructions',
  ]);
  start();
  let running = true;
  // If the test process dies without cleaning up, do not leave a server behind.
  const onExit = () => {
    if (running)
      spawnSync(
        root ? 'runuser' : path.join(bin, 'pg_ctl'),
        root
          ? ['-u', 'postgres', '--', path.join(bin, 'pg_ctl'), '-D', data, '-m', 'immediate', 'stop']
          : ['-D', data, '-m', 'immediate', 'stop'],
        { cwd: dir },
      );
  };
  process.once('exit', onExit);

  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return {
    url,
    owned: true,
    createDatabase: () => createDatabase(url),
    async stop() {
      stop('fast');
      running = false;
    },
    async start() {
      start();
      running = true;
    },
    async destroy() {
      process.removeListener('exit', onExit);
      if (running) {
        try {
          stop('immediate');
        } catch {
          // already down
        }
        running = false;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
