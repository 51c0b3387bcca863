/**
 * The names the SQL sinks write under: the bookkeeping tables, the table of each aggregate type, and
 * quoting. Aggregate types are `[a-z0-9_-]{1,64}`, so any writer can pick a type named like a table the
 * sink keeps for itself or like a name the database reserves; its table must still be one of its own,
 * or the sink would write rows into a table it cannot take them (and retry that event, holding up
 * every later one). Such a type gets the table `aggregate$<type>`: no type a plugin receives holds a
 * `$` (only the store's own, never delivered, begin with one), so that name is no other type's table, and it is a pure function of the type, so a restart, a replay
 * or a rebuild writes to the same table.
 */
import { fitIdent } from '../columns.js';

export type SqlDialect = 'postgres' | 'sqlite';

/**
 * One row (`id` = 1): the newest event the tables hold. A new bookkeeping table should take a name
 * with a `$` (no aggregate type can have it); these two are kept for the destinations that hold them.
 */
export const HEAD_TABLE = 'eventdbx_sink_head';
/** The tables the sink created, one row each. */
export const TABLES_TABLE = 'eventdbx_sink_tables';

/** The prefix of the table of an aggregate type whose own name is not free (see `tableName`). */
export const MAPPED_TABLE_PREFIX = 'aggregate$';

/**
 * Whether `type` cannot be its own table's name: a bookkeeping table's name, or (SQLite) `sqlite_…`,
 * which SQLite keeps for its own objects (`object name reserved for internal use`). PostgreSQL's
 * catalog names (`pg_class`) need no mapping: the PostgreSQL sink names its tables with their schema.
 */
function reserved(type: string, dialect: SqlDialect): boolean {
  return (
    type === HEAD_TABLE ||
    type === TABLES_TABLE ||
    (dialect === 'sqlite' && type.toLowerCase().startsWith('sqlite_'))
  );
}

/**
 * The table of an aggregate type: the type itself (shortened with a hash past 63 bytes), or
 * `aggregate$<type>` when the type names a table the database or the sink keeps for itself.
 */
export const tableName = (aggregateType: string, dialect: SqlDialect): string =>
  fitIdent(reserved(aggregateType, dialect) ? `${MAPPED_TABLE_PREFIX}${aggregateType}` : aggregateType);

export const quoteIdent = (name: string): string => `"${name.replace(/"/g, '""')}"`;
