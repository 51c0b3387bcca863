/**
 * PostgreSQL sink: one table per aggregate type (`id`, `version`, `created_at`, `created_by`,
 * `updated_at`, `updated_by`, one column per field), rows upserted with the aggregate state at the
 * event. A batch is one transaction on a pooled connection. The upsert is guarded by version, so a
 * redelivery never regresses a row and a replay rewrites rows with their newest state. The same
 * transaction records the newest event delivered and the tables created (sql/bookkeeping.ts): the
 * version guard would silently drop the events of a store restored from a backup, so the host
 * compares that record with the store before delivering, and `--rebuild` drops what is recorded.
 * Tables are named with their schema (the connection's current one): unqualified, a table named like
 * one of PostgreSQL's catalogs (`pg_class`, an aggregate type anyone may use) would be created in the
 * schema but read and written in pg_catalog, which is searched first.
 *
 * Every statement has `--timeout`: the server cancels one that runs longer (`SET LOCAL
 * statement_timeout`, so a statement waiting on a lock does not go on holding the transaction's locks
 * after the sink gave up on it, and each retry does not leave one more backend waiting), and the
 * driver gives up on a server that does not answer at all a little later (`query_timeout`).
 */
import type { Client, Pool, PoolClient } from 'pg';
import { ROW_COLUMNS } from '../columns.js';
import { driverConnectionString } from './connection.js';
import { type ServerError, classify, connectFailure, isSqlError, serverReason, sqlState } from './errors.js';
import { NotATable, shapeProblem } from '../sql/shape.js';
import {
  CREATE_BOOKKEEPING,
  HEAD_TABLE,
  HEAD_UPSERT,
  TABLES_TABLE,
  TABLE_INSERT,
  dropStatement,
  newestOf,
  tablesToDrop,
} from '../sql/bookkeeping.js';
import { postgresType } from '../sql/datatypes.js';
import {
  type SqlField,
  type SqlRow,
  type TypeOf,
  buildRows,
  groupRows,
  quoteIdent,
  rowParams,
} from '../sql/rows.js';
import {
  type DeliveryItem,
  type DeliveryOptions,
  type HeldEvent,
  type PostgresSettings,
  type Sink,
  DeliveryFailure,
  reasonOf,
  transientFailure,
} from '../types.js';

/** Keep a statement well under PostgreSQL's 65535 bind parameters. */
const MAX_PARAMS = 30_000;
/**
 * How much longer than `--timeout` the driver waits for an answer: the server's own cancellation
 * (statement_timeout) comes first, and ends the statement where the driver giving up would not.
 */
const ANSWER_SLACK_MS = 2_000;

export class PostgresSink implements Sink {
  readonly needsState = true;
  readonly batchSize = 500;
  #pool: Pool | undefined;
  /** Pools being ended, and the connections in use: what `abandon` cuts. */
  readonly #ending = new Set<Pool>();
  readonly #inUse = new Set<Client | PoolClient>();
  /** Columns known to exist, per table (cleared on any failure: a table may have been dropped). */
  readonly #columns = new Map<string, Set<string>>();
  /** The bookkeeping tables are known to exist (forgotten with the columns on any failure). */
  #bookkept = false;
  /** The schema the tables are in, read with the bookkeeping (null: no schema on the search path). */
  #schema: string | null = null;

  constructor(
    private readonly settings: PostgresSettings,
    private readonly delivery: DeliveryOptions,
    private readonly typeOf: TypeOf,
  ) {}

  async #getPool(): Promise<Pool> {
    if (!this.#pool) {
      const { default: pg } = await import('pg');
      const pool = new pg.Pool({
        connectionString: driverConnectionString(this.settings.connection),
        max: 2,
        connectionTimeoutMillis: this.delivery.timeout_ms,
        query_timeout: this.delivery.timeout_ms + ANSWER_SLACK_MS,
        idleTimeoutMillis: 30_000,
        application_name: 'eventdbx',
      });
      // An idle connection that dies (server restart) is dropped; the next query connects again.
      pool.on('error', () => undefined);
      this.#pool = pool;
    }
    return this.#pool;
  }

  async deliver(items: readonly DeliveryItem[]): Promise<void> {
    const { rows, failure } = buildRows('postgres', items, this.typeOf);
    if (rows.length > 0) {
      try {
        await this.#write(rows, newestOf(items, failure?.delivered));
      } catch (e) {
        throw classify(e, items);
      }
    }
    if (failure) throw failure;
  }

  async #write(
    rows: readonly SqlRow[],
    newest: { position: number; hash: string } | undefined,
  ): Promise<void> {
    await this.#transaction(async (client) => {
      if (!this.#bookkept) {
        for (const sql of CREATE_BOOKKEEPING) await client.query(sql);
        this.#schema = await currentSchema(client);
        this.#bookkept = true;
      }
      for (const g of groupRows(rows)) {
        await this.#ensureColumns(client, g.table, g.rows[0]!.fields);
        const perRow = ROW_COLUMNS.length + g.columns.length;
        const chunk = Math.max(1, Math.floor(MAX_PARAMS / perRow));
        for (let i = 0; i < g.rows.length; i += chunk) {
          const part = g.rows.slice(i, i + chunk);
          await client.query(
            upsertSql(qualified(this.#schema, g.table), g.columns, part.length),
            part.flatMap((r) => rowParams(r)),
          );
        }
      }
      if (newest) await client.query(HEAD_UPSERT(pgParam), [newest.position, newest.hash]);
    });
  }

  /**
   * The newest event the tables hold, as recorded with the last batch (none before the first). Read
   * on a connection of its own, listened to for errors from before it connects until it is ended:
   * asked only when the sink (re)opens, and never racing the pool's checkouts.
   */
  async held(): Promise<HeldEvent[]> {
    const { default: pg } = await import('pg');
    const client = new pg.Client({
      connectionString: driverConnectionString(this.settings.connection),
      connectionTimeoutMillis: this.delivery.timeout_ms,
      query_timeout: this.delivery.timeout_ms,
      application_name: 'eventdbx',
    });
    client.on('error', () => undefined);
    this.#inUse.add(client);
    try {
      await client.connect().catch((e: unknown) => {
        throw connectFailure(e);
      });
      const exists = await client.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [HEAD_TABLE]);
      if (exists.rows[0]?.t == null) return [];
      const head = await client.query<{ position: string; hash: string }>(
        `SELECT position, hash FROM ${HEAD_TABLE} WHERE id = 1`,
      );
      return head.rows.map((r) => ({ position: Number(r.position), hash: r.hash }));
    } catch (e) {
      if (e instanceof DeliveryFailure) throw e;
      throw transientFailure('postgres', sqlState(e) ? serverReason(e as ServerError) : reasonOf(e), 0);
    } finally {
      this.#inUse.delete(client);
      await client.end().catch(() => undefined);
    }
  }

  /** Drop the tables this sink created (and those of the store's types) and its bookkeeping. */
  async clear(types: readonly string[]): Promise<string[]> {
    this.#columns.clear();
    this.#bookkept = false;
    return this.#transaction(async (client) => {
      const schema = await currentSchema(client);
      const exists = await client.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [TABLES_TABLE]);
      const recorded =
        exists.rows[0]?.t == null
          ? []
          : (await client.query<{ name: string }>(`SELECT name FROM ${TABLES_TABLE}`)).rows.map(
              (r) => r.name,
            );
      const dropped: string[] = [];
      for (const table of [...tablesToDrop(recorded, types, 'postgres'), TABLES_TABLE, HEAD_TABLE]) {
        const name = qualified(schema, table);
        const found = await client.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [name]);
        if (found.rows[0]?.t == null) continue;
        await client.query(dropStatement(name));
        dropped.push(`dropped table ${table}`);
      }
      return dropped;
    });
  }

  /** Run `fn` in one transaction on a pooled connection. */
  async #transaction<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await (await this.#getPool()).connect().catch((e: unknown) => {
      throw connectFailure(e);
    });
    // The pool only listens for errors on idle connections. A connection cut while checked out (the
    // server shutting down, an administrator terminating the backend) emits 'error' on the client, which
    // would otherwise be unhandled and end the process; the query in flight fails with it anyway.
    const ignore = (): void => undefined;
    client.on('error', ignore);
    this.#inUse.add(client);
    let healthy = true;
    try {
      // One round trip; LOCAL: the setting ends with the transaction (a pooler may share the session).
      await client.query(`BEGIN; SET LOCAL statement_timeout = ${this.delivery.timeout_ms}`);
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (e) {
      this.#columns.clear();
      this.#bookkept = false;
      healthy = isSqlError(e);
      if (healthy) await client.query('ROLLBACK').catch(() => (healthy = false));
      throw e;
    } finally {
      // A connection that failed below SQL (network, server shutdown) is discarded, not reused.
      this.#inUse.delete(client);
      client.off('error', ignore);
      client.release(!healthy);
    }
  }

  async #ensureColumns(client: PoolClient, table: string, fields: readonly SqlField[]): Promise<void> {
    const name = qualified(this.#schema, table);
    let columns = this.#columns.get(table);
    if (!columns) {
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${name} (id TEXT PRIMARY KEY, version BIGINT NOT NULL, ` +
          'created_at TIMESTAMPTZ, created_by TEXT, updated_at TIMESTAMPTZ, updated_by TEXT)',
      );
      // From the catalog, which shows every relation's columns whatever the role may do with them.
      const res = await client.query<{ kind: string; columns: string[] }>(
        'SELECT c.relkind AS kind, ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = c.oid ' +
          'AND attnum > 0 AND NOT attisdropped) AS columns FROM pg_class c WHERE c.oid = to_regclass($1)',
        [name],
      );
      const found = res.rows[0] ?? { kind: 'r', columns: [] };
      columns = new Set(found.columns);
      // Another object of that name (an index such as `<type>_pkey`, a view, someone's own table):
      // IF NOT EXISTS left it in place, and no row of this plugin will ever go into it.
      const problem = TABLE_KINDS.has(found.kind)
        ? shapeProblem(columns)
        : `it is ${RELATION_KINDS[found.kind] ?? 'not a table'}`;
      if (problem !== undefined) throw new NotATable(table, problem);
      this.#columns.set(table, columns);
      await client.query(TABLE_INSERT(pgParam), [table]);
    }
    // All of a row's new columns in one statement: one round trip (and over 1600 columns, one refusal).
    const missing = new Map(fields.filter((f) => !columns.has(f.column)).map((f) => [f.column, f.type]));
    if (missing.size === 0) return;
    const adds = [...missing].map(
      ([c, type]) => `ADD COLUMN IF NOT EXISTS ${quoteIdent(c)} ${postgresType(type)}`,
    );
    await client.query(`ALTER TABLE ${name} ${adds.join(', ')}`);
    for (const c of missing.keys()) columns.add(c);
  }

  async close(): Promise<void> {
    const pool = this.#pool;
    this.#pool = undefined;
    if (!pool) return;
    // Ending waits for the connections in use to be released.
    this.#ending.add(pool);
    try {
      await pool.end().catch(() => undefined);
    } finally {
      this.#ending.delete(pool);
    }
  }

  /**
   * Cut the connections in use (the driver closes the socket of one with a query in flight: the query
   * fails, its transaction is never committed, the server rolls it back) and end the pools without
   * waiting.
   */
  abandon(): string {
    const pools = [...this.#ending, ...(this.#pool ? [this.#pool] : [])];
    this.#pool = undefined;
    this.#ending.clear();
    const cut = this.#inUse.size;
    for (const c of this.#inUse) void c.end().catch(() => undefined);
    this.#inUse.clear();
    for (const p of pools) void p.end().catch(() => undefined);
    return `its PostgreSQL connections were cut (${cut} in use)`;
  }
}

const pgParam = (n: number): string => `$${n}`;

/** Ordinary and partitioned tables: what rows can be upserted into. */
const TABLE_KINDS: ReadonlySet<string> = new Set(['r', 'p']);
/** The other relations a name can belong to (pg_class.relkind). */
const RELATION_KINDS: Readonly<Record<string, string>> = {
  i: 'an index',
  I: 'an index',
  S: 'a sequence',
  v: 'a view',
  m: 'a materialized view',
  c: 'a composite type',
  f: 'a foreign table',
  t: 'a TOAST table',
};

const currentSchema = async (client: PoolClient): Promise<string | null> =>
  (await client.query<{ s: string | null }>('SELECT current_schema() AS s')).rows[0]?.s ?? null;

/** A table's name in statements: quoted, and qualified with its schema when there is one. */
const qualified = (schema: string | null, table: string): string =>
  schema === null ? quoteIdent(table) : `${quoteIdent(schema)}.${quoteIdent(table)}`;

/** `table`: quoted and qualified. */
function upsertSql(table: string, columns: readonly string[], rows: number): string {
  const all = [...ROW_COLUMNS, ...columns].map(quoteIdent);
  const values: string[] = [];
  let n = 0;
  for (let r = 0; r < rows; r++) values.push(`(${all.map(() => `$${++n}`).join(', ')})`);
  const set = all
    .slice(1)
    .map((c) => `${c} = EXCLUDED.${c}`)
    .join(', ');
  return (
    `INSERT INTO ${table} AS cur (${all.join(', ')}) VALUES ${values.join(', ')} ` +
    `ON CONFLICT (id) DO UPDATE SET ${set} WHERE EXCLUDED.version >= cur.version`
  );
}
