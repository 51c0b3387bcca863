/**
 * What the SQL sinks record about their own writes, next to the tables (PostgreSQL and SQLite alike):
 * the newest event delivered (its position and hash), written in the same transaction as each batch,
 * so the delivery host can tell a destination that holds history the store does not have (see
 * ../divergence.ts); and the tables the sink created, so `plugin replay --rebuild` drops them all,
 * those of aggregate types the store no longer has included.
 */
import type { DeliveryItem } from '../types.js';
import { HEAD_TABLE, type SqlDialect, TABLES_TABLE, tableName } from './names.js';

export { HEAD_TABLE, TABLES_TABLE };

/** The bookkeeping tables (PostgreSQL and SQLite share the statements). */
export const CREATE_BOOKKEEPING = [
  `CREATE TABLE IF NOT EXISTS ${HEAD_TABLE} (id INTEGER PRIMARY KEY CHECK (id = 1), position BIGINT NOT NULL, hash TEXT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS ${TABLES_TABLE} (name TEXT PRIMARY KEY)`,
];

/**
 * Record the newest event of a batch. Only ever forward: a dead letter retried or a plain replay
 * (events the store has) delivers below it.
 */
export const HEAD_UPSERT = (p: (n: number) => string): string =>
  `INSERT INTO ${HEAD_TABLE} AS cur (id, position, hash) VALUES (1, ${p(1)}, ${p(2)}) ` +
  'ON CONFLICT (id) DO UPDATE SET position = EXCLUDED.position, hash = EXCLUDED.hash ' +
  'WHERE EXCLUDED.position > cur.position';

export const TABLE_INSERT = (p: (n: number) => string): string =>
  `INSERT INTO ${TABLES_TABLE} (name) VALUES (${p(1)}) ON CONFLICT (name) DO NOTHING`;

/** The newest event a batch writes: the last of the items before `failedAt` (a cast failure). */
export function newestOf(
  items: readonly DeliveryItem[],
  failedAt: number | undefined,
): { position: number; hash: string } | undefined {
  let newest: { position: number; hash: string } | undefined;
  for (const { record } of items.slice(0, failedAt ?? items.length))
    if (!newest || record.position > newest.position)
      newest = { position: record.position, hash: record.hash };
  return newest;
}

/** The tables `--rebuild` drops: those recorded, those of the store's types, and the bookkeeping. */
export const tablesToDrop = (
  recorded: readonly string[],
  types: readonly string[],
  dialect: SqlDialect,
): string[] => [
  ...new Set([...recorded, ...types.filter((t) => !t.startsWith('$')).map((t) => tableName(t, dialect))]),
];

/** `table`: the table's name as quoted (and, in PostgreSQL, qualified) by the sink. */
export const dropStatement = (table: string): string => `DROP TABLE IF EXISTS ${table}`;
