/**
 * SQLite sink: the PostgreSQL table shape in a local file (better-sqlite3). A batch is one
 * transaction (WAL, synchronous=FULL, so an acknowledged batch survives a power cut). The driver is
 * synchronous, so the busy timeout is 0: a file locked by another process fails fast and is retried
 * with backoff instead of blocking the server. SQLite has no `ADD COLUMN IF NOT EXISTS` and compares
 * column names case-insensitively: existing columns are read first.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { ROW_COLUMNS, disambiguate } from '../columns.js';
import { type SqlValue, sqliteType } from '../sql/datatypes.js';
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
  type Sink,
  type SqliteSettings,
  DeliveryFailure,
  reasonOf,
  rejectedFailure,
  transientFailure,
} from '../types.js';

type Db = BetterSqlite3.Database;

export class SqliteSink implements Sink {
  readonly needsState = true;
  readonly batchSize = 500;
  #db: Db | undefined;
  /** Per table: lower-cased column name → actual column name. */
  readonly #columns = new Map<string, Map<string, string>>();
  readonly #statements = new Map<string, BetterSqlite3.Statement>();

  constructor(
    private readonly settings: SqliteSettings,
    private readonly typeOf: TypeOf,
  ) {}

  async #open(): Promise<Db> {
    if (this.#db) return this.#db;
    const { default: Database } = await import('better-sqlite3');
    await mkdir(path.dirname(this.settings.path), { recursive: true });
    const db = new Database(this.settings.path, { timeout: 0 });
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
    } catch (e) {
      db.close();
      throw e;
    }
    this.#db = db;
    return db;
  }

  async deliver(items: readonly DeliveryItem[]): Promise<void> {
    const { rows, failure } = buildRows('sqlite', items, this.typeOf);
    if (rows.length > 0) {
      try {
        const db = await this.#open();
        db.transaction(() => this.#write(db, rows))();
      } catch (e) {
        this.#columns.clear();
        this.#statements.clear();
        throw classify(e, items);
      }
    }
    if (failure) throw failure;
  }

  #write(db: Db, rows: readonly SqlRow[]): void {
    for (const g of groupRows(rows)) {
      const columns = this.#ensureColumns(db, g.table, g.rows[0]!);
      const st = this.#statement(db, g.table, columns);
      for (const r of g.rows) st.run(rowParams(r, sqliteValue));
    }
  }

  /** Create the table and missing columns; returns the actual column of each field of `sample`. */
  #ensureColumns(db: Db, table: string, sample: SqlRow): string[] {
    let existing = this.#columns.get(table);
    if (!existing) {
      db.exec(
        `CREATE TABLE IF NOT EXISTS ${quoteIdent(table)} (id TEXT PRIMARY KEY, version INTEGER NOT NULL, ` +
          'created_at TEXT, created_by TEXT, updated_at TEXT, updated_by TEXT)',
      );
      const info = db.prepare(`PRAGMA table_info(${quoteIdent(table)})`).all() as Array<{ name: string }>;
      existing = new Map(info.map((c) => [c.name.toLowerCase(), c.name]));
      this.#columns.set(table, existing);
    }
    return sample.fields.map((f) => {
      let column = f.column;
      const same = existing.get(column.toLowerCase());
      // `Name` and `name` are one column to SQLite: the later field gets a distinct, stable name.
      if (same !== undefined && same !== column) column = disambiguate(column);
      if (!existing.has(column.toLowerCase())) {
        db.exec(`ALTER TABLE ${quoteIdent(table)} ADD COLUMN ${quoteIdent(column)} ${sqliteType(f.type)}`);
        existing.set(column.toLowerCase(), column);
      }
      return column;
    });
  }

  #statement(db: Db, table: string, columns: readonly string[]): BetterSqlite3.Statement {
    const all = [...ROW_COLUMNS, ...columns].map(quoteIdent);
    const key = `${table}\u0000${all.join('\u0000')}`;
    let st = this.#statements.get(key);
    if (!st) {
      const set = all
        .slice(1)
        .map((c) => `${c} = excluded.${c}`)
        .join(', ');
      st = db.prepare(
        `INSERT INTO ${quoteIdent(table)} (${all.join(', ')}) VALUES (${all.map(() => '?').join(', ')}) ` +
          `ON CONFLICT (id) DO UPDATE SET ${set} WHERE excluded.version >= ${quoteIdent(table)}.version`,
      );
      this.#statements.set(key, st);
    }
    return st;
  }

  async close(): Promise<void> {
    const db = this.#db;
    this.#db = undefined;
    this.#statements.clear();
    db?.close();
  }
}

const toSqlite = (v: SqlValue): string | number | bigint | null => (typeof v === 'boolean' ? (v ? 1 : 0) : v);

/** A field value in SQLite's terms: booleans as 0/1, bigint columns as 64-bit integers. */
const sqliteValue = (f: SqlField): unknown =>
  f.type.base === 'bigint' && typeof f.value === 'string' ? BigInt(f.value) : toSqlite(f.value);

function classify(e: unknown, items: readonly DeliveryItem[]): DeliveryFailure {
  if (e instanceof DeliveryFailure) return e;
  const code = String((e as { code?: unknown }).code ?? '');
  const reason = `${reasonOf(e)}${code ? ` (${code})` : ''}`;
  if (code.startsWith('SQLITE_CONSTRAINT') || code === 'SQLITE_MISMATCH' || code === 'SQLITE_TOOBIG') {
    return rejectedFailure('sqlite', items[0]!.record, reason, items.length === 1 ? 0 : undefined);
  }
  return transientFailure('sqlite', reason, 0);
}
