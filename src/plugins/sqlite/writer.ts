/**
 * The SQLite side of the SQLite sink (better-sqlite3, synchronous): one transaction per batch of rows,
 * tables and columns created as rows need them. It runs on the sink's own thread (thread.ts), so that
 * its inserts and the fsync of each commit never stall the server's event loop. SQLite has no
 * `ADD COLUMN IF NOT EXISTS` and compares column names case-insensitively: existing columns are read
 * first. Each transaction also records the newest event delivered and the tables created (see
 * ../sql/bookkeeping.ts).
 */
import BetterSqlite3 from 'better-sqlite3';
import { type Stats, closeSync, openSync, statSync } from 'node:fs';
import path from 'node:path';
import { ROW_COLUMNS, disambiguate } from '../columns.js';
import { type SqlValue, sqliteType } from '../sql/datatypes.js';
import {
  CREATE_BOOKKEEPING,
  HEAD_TABLE,
  HEAD_UPSERT,
  TABLES_TABLE,
  TABLE_INSERT,
  dropStatement,
  tablesToDrop,
} from '../sql/bookkeeping.js';
import { type SqlField, type SqlRow, groupRows, quoteIdent, rowParams } from '../sql/rows.js';
import { NotATable, shapeProblem } from '../sql/shape.js';
import type { HeldEvent } from '../types.js';
import { PRIVATE_DIR, PRIVATE_FILE, sameFile } from '../files.js';
import { makeDir } from '../../fs/make-dir.js';

type Db = BetterSqlite3.Database;

/** SQLite's default SQLITE_MAX_COLUMN, which better-sqlite3 builds with: columns of a table. */
const SQLITE_MAX_COLUMN = 2000;

export class SqliteWriter {
  #db: Db | undefined;
  /** The database file as opened (device and inode). */
  #opened: Pick<Stats, 'dev' | 'ino'> | undefined;
  /** Per table: lower-cased column name → actual column name. */
  readonly #columns = new Map<string, Map<string, string>>();
  readonly #statements = new Map<string, BetterSqlite3.Statement>();

  constructor(private readonly file: string) {}

  /** Write the rows in one transaction (WAL, synchronous=FULL: committed means on disk). */
  write(rows: readonly SqlRow[], newest?: { position: number; hash: string }): void {
    try {
      const db = this.#open();
      db.transaction(() => {
        for (const sql of CREATE_BOOKKEEPING) db.exec(sql);
        for (const g of groupRows(rows)) {
          const columns = this.#ensureColumns(db, g.table, g.rows[0]!);
          const st = this.#statement(db, g.table, columns);
          for (const r of g.rows) st.run(rowParams(r, sqliteValue));
        }
        if (newest) db.prepare(HEAD_UPSERT(() => '?')).run(newest.position, newest.hash);
      })();
    } catch (e) {
      // What was learnt about the tables may be stale after a failure: read it again next time.
      this.#columns.clear();
      this.#statements.clear();
      throw e;
    }
  }

  /** The newest event the tables hold, as recorded with the last batch (none before the first). */
  held(): HeldEvent[] {
    const db = this.#open();
    if (!exists(db, HEAD_TABLE)) return [];
    const row = db.prepare(`SELECT position, hash FROM ${HEAD_TABLE} WHERE id = 1`).get() as
      { position: number; hash: string } | undefined;
    return row ? [{ position: Number(row.position), hash: row.hash }] : [];
  }

  /** Drop the tables this sink created (and those of the store's types) and its bookkeeping. */
  clear(types: readonly string[]): string[] {
    const db = this.#open();
    this.#columns.clear();
    this.#statements.clear();
    const recorded = exists(db, TABLES_TABLE)
      ? (db.prepare(`SELECT name FROM ${TABLES_TABLE}`).all() as Array<{ name: string }>).map((r) => r.name)
      : [];
    const dropped: string[] = [];
    db.transaction(() => {
      for (const table of [...tablesToDrop(recorded, types, 'sqlite'), TABLES_TABLE, HEAD_TABLE]) {
        if (!exists(db, table)) continue;
        db.exec(dropStatement(quoteIdent(table)));
        dropped.push(`dropped table ${table}`);
      }
    })();
    return dropped;
  }

  close(): void {
    const db = this.#db;
    this.#db = undefined;
    this.#statements.clear();
    this.#columns.clear();
    db?.close();
  }

  #open(): Db {
    // Deleted or replaced while open: the connection would go on writing into the unlinked file.
    // Closing checkpoints into it and removes its WAL; the database is then created afresh.
    if (this.#db && !sameFile(this.#opened!, statOrNone(this.file))) this.close();
    if (this.#db) return this.#db;
    makeDir(path.dirname(this.file), PRIVATE_DIR);
    // SQLite would create the file 0644; created first, owner-only (its -wal and -shm files follow it).
    closeSync(openSync(this.file, 'a', PRIVATE_FILE));
    // Busy timeout 0: a file locked by another process fails fast and is retried with backoff.
    const db = new BetterSqlite3(this.file, { timeout: 0 });
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
    } catch (e) {
      db.close();
      throw e;
    }
    this.#db = db;
    this.#opened = statSync(this.file);
    return db;
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
      const found = new Map(info.map((c) => [c.name.toLowerCase(), c.name]));
      // A view or someone's own table of that name: IF NOT EXISTS left it, and it takes no row of ours.
      const problem = shapeProblem(new Set(found.keys()));
      if (problem !== undefined) throw new NotATable(table, problem);
      existing = found;
      this.#columns.set(table, existing);
      db.prepare(TABLE_INSERT(() => '?')).run(table);
    }
    const added = new Map<string, string>();
    const missing: Array<{ column: string; type: SqlField['type'] }> = [];
    const columns = sample.fields.map((f) => {
      const same = existing.get(f.column.toLowerCase()) ?? added.get(f.column.toLowerCase());
      // `Name` and `name` are one column to SQLite: the later field gets a distinct, stable name.
      const column = same !== undefined && same !== f.column ? disambiguate(f.column) : f.column;
      const key = column.toLowerCase();
      if (!existing.has(key) && !added.has(key)) {
        added.set(key, column);
        missing.push({ column, type: f.type });
      }
      return column;
    });
    // Each ADD COLUMN rewrites the table's schema, so a row over the limit would cost seconds of
    // them before SQLite refused the 2001st: refuse it first, with SQLite's own error.
    if (existing.size + missing.length > SQLITE_MAX_COLUMN) {
      throw Object.assign(
        new Error(
          `too many columns on ${table}: ${existing.size + missing.length} (SQLite allows ${SQLITE_MAX_COLUMN})`,
        ),
        { code: 'SQLITE_ERROR' },
      );
    }
    for (const { column, type } of missing) {
      db.exec(`ALTER TABLE ${quoteIdent(table)} ADD COLUMN ${quoteIdent(column)} ${sqliteType(type)}`);
      existing.set(column.toLowerCase(), column);
    }
    return columns;
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
}

const exists = (db: Db, table: string): boolean =>
  db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table) !== undefined;

function statOrNone(file: string): Stats | undefined {
  try {
    return statSync(file);
  } catch {
    return undefined;
  }
}

const toSqlite = (v: SqlValue): string | number | bigint | null => (typeof v === 'boolean' ? (v ? 1 : 0) : v);

/** A field value in SQLite's terms: booleans as 0/1, bigint columns as 64-bit integers. */
const sqliteValue = (f: SqlField): unknown =>
  f.type.base === 'bigint' && typeof f.value === 'string' ? BigInt(f.value) : toSqlite(f.value);
