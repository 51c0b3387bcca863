/**
 * Rows for the SQL sinks: one row per aggregate holding its state as of an event, every value cast to
 * its mapped column type. Shared by PostgreSQL and SQLite so both mirror the same column set.
 */
import { err } from '../../core/errors.js';
import { RESERVED_SQL, fieldColumn, issuerText } from '../columns.js';
import { type DeliveryItem, type Mappings, type TypeMap, DeliveryFailure } from '../types.js';
import { type DataType, type SqlValue, TEXT, castValue, parseDataType } from './datatypes.js';
import { type SqlDialect, quoteIdent, tableName } from './names.js';

export { quoteIdent, tableName };

export interface SqlField {
  readonly field: string;
  readonly column: string;
  readonly type: DataType;
  readonly value: SqlValue;
}

export interface SqlRow {
  readonly table: string;
  readonly id: string;
  readonly version: number;
  readonly created_at: string;
  readonly created_by: string;
  readonly updated_at: string;
  readonly updated_by: string;
  readonly fields: readonly SqlField[];
}

export type TypeOf = (aggregateType: string, field: string) => DataType;

/**
 * A row's statement parameters in table column order (ROW_COLUMNS, then the fields), each field value
 * put in the driver's terms by `value`.
 */
export const rowParams = (r: SqlRow, value: (f: SqlField) => unknown = (f) => f.value): unknown[] => [
  r.id,
  r.version,
  r.created_at,
  r.created_by,
  r.updated_at,
  r.updated_by,
  ...r.fields.map(value),
];

/** Column types for one SQL plugin: its own overrides, then the base mapping, then TEXT. */
export function typeResolver(mappings: Mappings, plugin: 'postgres' | 'sqlite'): TypeOf {
  const cache = new Map<string, DataType>();
  // Own properties only: a field or aggregate type named `constructor` must not find Object's.
  const lookup = (m: TypeMap, type: string, field: string): string | undefined => {
    const fields = Object.hasOwn(m, type) ? m[type] : undefined;
    return fields && Object.hasOwn(fields, field) ? fields[field] : undefined;
  };
  return (type, field) => {
    const key = `${type}\u0000${field}`;
    let t = cache.get(key);
    if (!t) {
      const name = lookup(mappings[plugin], type, field) ?? lookup(mappings.base, type, field);
      t = name === undefined ? TEXT : parseDataType(name);
      cache.set(key, t);
    }
    return t;
  };
}

/**
 * Rows for a batch, cast and collapsed to the newest version per aggregate (each row is the full
 * state, so the last one wins). A value that cannot be cast stops the batch at the event that set it:
 * the rows before it are returned with a permanent failure naming the field (never the value), so the
 * host dead-letters exactly that event. Later events of the aggregate omit that column (it keeps its
 * last good value).
 */
export function buildRows(
  plugin: SqlDialect,
  items: readonly DeliveryItem[],
  typeOf: TypeOf,
): { rows: SqlRow[]; failure?: DeliveryFailure } {
  const latest = new Map<string, SqlRow>();
  for (let i = 0; i < items.length; i++) {
    const { record, row } = items[i]!;
    if (!row) throw err('EDBX_ERR_INTERNAL', { reason: 'SQL sinks need the aggregate state' });
    const fields: SqlField[] = [];
    for (const [field, raw] of Object.entries(row.state)) {
      const type = typeOf(record.aggregate_type, field);
      const cast = castValue(type, raw);
      if (!cast.ok) {
        // Only the event that set the value fails; later events leave that column as it was.
        if (!Object.prototype.hasOwnProperty.call(record.payload, field)) continue;
        const failure = new DeliveryFailure(
          // The value stays out: the message is logged and kept as the dead letter's reason.
          err('EDBX_ERR_PLUGIN_CAST', {
            plugin,
            field,
            aggregate_type: record.aggregate_type,
            aggregate_id: record.aggregate_id,
            version: record.version,
            datatype: type.name,
          }),
          true,
          i,
        );
        return { rows: [...latest.values()], failure };
      }
      const column = fieldColumn(field, RESERVED_SQL);
      // fieldColumn gives every name its own column; only names made to equal another's shortened
      // form (`<54 characters>_<hash>`) can meet here, and one statement cannot set a column twice.
      const taken = fields.findIndex((f) => f.column === column);
      if (taken >= 0) fields.splice(taken, 1);
      fields.push({ field, column, type, value: cast.value });
    }
    latest.set(`${record.aggregate_type}\u0000${record.aggregate_id}`, {
      table: tableName(record.aggregate_type, plugin),
      id: record.aggregate_id,
      version: record.version,
      created_at: row.created_at,
      created_by: issuerText(row.created_by),
      updated_at: record.metadata.created_at,
      updated_by: issuerText(record.metadata.issued_by),
      fields,
    });
  }
  return { rows: [...latest.values()] };
}

/** Rows grouped by table and column list, so each group can be one multi-row statement. */
export function groupRows(
  rows: readonly SqlRow[],
): Array<{ table: string; columns: string[]; rows: SqlRow[] }> {
  const groups = new Map<string, { table: string; columns: string[]; rows: SqlRow[] }>();
  for (const r of rows) {
    const columns = r.fields.map((f) => f.column);
    const key = `${r.table}\u0000${columns.join('\u0000')}`;
    const g = groups.get(key);
    if (g) g.rows.push(r);
    else groups.set(key, { table: r.table, columns, rows: [r] });
  }
  return [...groups.values()];
}
