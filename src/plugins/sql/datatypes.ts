/**
 * Column datatypes of the SQL plugins (`plugin map --datatype`): parsing, the column type each
 * dialect uses, and casting a stored string to the value the column receives. EventDBX stores
 * strings; the mapping decides what a destination column holds (an integer column receives 42, not '42').
 * An empty string becomes NULL in any non-text column.
 */
import { err } from '../../core/errors.js';

export type Base =
  | 'text'
  | 'varchar'
  | 'smallint'
  | 'integer'
  | 'bigint'
  | 'real'
  | 'numeric'
  | 'boolean'
  | 'date'
  | 'timestamp'
  | 'time'
  | 'json'
  | 'uuid';

export interface DataType {
  /** Canonical spelling, e.g. `integer`, `varchar(32)`, `numeric(10,2)`. */
  readonly name: string;
  readonly base: Base;
  readonly params: readonly number[];
}

const ALIASES: Record<string, Base> = {
  text: 'text',
  string: 'text',
  varchar: 'varchar',
  'character varying': 'varchar',
  smallint: 'smallint',
  int2: 'smallint',
  integer: 'integer',
  int: 'integer',
  int4: 'integer',
  bigint: 'bigint',
  int8: 'bigint',
  real: 'real',
  float: 'real',
  float8: 'real',
  double: 'real',
  'double precision': 'real',
  numeric: 'numeric',
  decimal: 'numeric',
  boolean: 'boolean',
  bool: 'boolean',
  date: 'date',
  timestamp: 'timestamp',
  timestamptz: 'timestamp',
  datetime: 'timestamp',
  time: 'time',
  json: 'json',
  jsonb: 'json',
  uuid: 'uuid',
};

export const DATATYPE_NAMES =
  'text, varchar(n), smallint, integer, bigint, real (double), numeric[(p,s)], boolean, date, timestamp, time, json, uuid';

export const TEXT: DataType = { name: 'text', base: 'text', params: [] };

/** Parse a datatype name (case-insensitive, common aliases accepted). */
export function parseDataType(input: string): DataType {
  const m = /^\s*([a-z][a-z0-9 ]*?)\s*(?:\(\s*(\d{1,4})\s*(?:,\s*(\d{1,4})\s*)?\))?\s*$/i.exec(input);
  const base = m ? ALIASES[m[1]!.toLowerCase().replace(/\s+/g, ' ')] : undefined;
  const bad = () => err('EDBX_ERR_PLUGIN_DATATYPE_INVALID', { value: input, allowed: DATATYPE_NAMES });
  if (!m || !base) throw bad();
  const params = [m[2], m[3]].filter((p): p is string => p !== undefined).map(Number);
  if (base === 'varchar') {
    if (params.length !== 1 || params[0]! < 1) throw bad();
    return { name: `varchar(${params[0]})`, base, params };
  }
  if (base === 'numeric') {
    if (params.length === 0) return { name: 'numeric', base, params };
    const [p, s = 0] = params as [number, number?];
    if (p < 1 || p > 1000 || s > p) throw bad();
    return { name: `numeric(${p},${s})`, base, params: [p, s] };
  }
  if (params.length > 0) throw bad();
  return { name: base, base, params };
}

/** Column type in PostgreSQL. */
export function postgresType(t: DataType): string {
  switch (t.base) {
    case 'real':
      return 'DOUBLE PRECISION';
    case 'timestamp':
      return 'TIMESTAMPTZ';
    case 'json':
      return 'JSONB';
    default:
      return t.name.toUpperCase();
  }
}

/** Column type (affinity) in SQLite. */
export function sqliteType(t: DataType): string {
  switch (t.base) {
    case 'smallint':
    case 'integer':
    case 'bigint':
    case 'boolean':
      return 'INTEGER';
    case 'real':
      return 'REAL';
    case 'numeric':
      return 'NUMERIC';
    default:
      return 'TEXT';
  }
}

export type SqlValue = string | number | boolean | bigint | null;
export type CastResult = { readonly ok: true; readonly value: SqlValue } | { readonly ok: false };

const INT = /^[+-]?\d+$/;
const DECIMAL = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
const TRUE = new Set(['true', 't', 'yes', 'y', 'on', '1']);
const FALSE = new Set(['false', 'f', 'no', 'n', 'off', '0']);
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const TIMESTAMP =
  /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2})?)(?:\.(\d{1,9}))?(Z|[+-]\d{2}(?::?\d{2})?)?)?$/i;
const TIME = /^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** `Z`, `+05`, `+0530` or `+05:30` as `Z` / `+05:30` (what Date.parse reads); none = UTC. */
function offset(o: string | undefined): string {
  if (o === undefined || o.toUpperCase() === 'Z') return 'Z';
  const digits = o.slice(1).replace(':', '');
  return `${o[0]}${digits.slice(0, 2)}:${digits.slice(2) || '00'}`;
}

const ok = (value: SqlValue): CastResult => ({ ok: true, value });
const no: CastResult = { ok: false };

function intIn(raw: string, bits: 16 | 32 | 64): CastResult {
  if (!INT.test(raw)) return no;
  const n = BigInt(raw);
  const max = (1n << BigInt(bits - 1)) - 1n;
  if (n > max || n < -max - 1n) return no;
  return ok(bits === 64 ? n.toString() : Number(n));
}

/** A calendar date from year 1 (SQL has no year 0; Date.UTC would read years 0–99 as 1900–1999). */
function validDate(y: number, m: number, d: number): boolean {
  const t = new Date(0);
  t.setUTCFullYear(y, m - 1, d);
  return y >= 1 && t.getUTCFullYear() === y && t.getUTCMonth() === m - 1 && t.getUTCDate() === d;
}

/**
 * Cast a stored string for a column of type `t`. Values are exact and dialect-neutral: bigint and
 * numeric stay decimal strings (the driver or column converts without loss), timestamps become ISO UTC.
 */
export function castValue(t: DataType, raw: string): CastResult {
  if (t.base === 'text') return ok(raw);
  if (t.base === 'varchar') return [...raw].length <= t.params[0]! ? ok(raw) : no;
  if (raw === '') return ok(null);
  const v = raw.trim();
  switch (t.base) {
    case 'smallint':
      return intIn(v, 16);
    case 'integer':
      return intIn(v, 32);
    case 'bigint':
      return intIn(v, 64);
    case 'real': {
      const n = Number(v);
      return DECIMAL.test(v) && Number.isFinite(n) ? ok(n) : no;
    }
    case 'numeric': {
      if (!DECIMAL.test(v) || !Number.isFinite(Number(v))) return no;
      if (t.params.length === 2) {
        const [p, s] = t.params as [number, number];
        const whole = Number(v).toFixed(0).replace('-', '').replace(/^0+/, '');
        if (whole.length > p - s) return no;
      }
      return ok(v);
    }
    case 'boolean': {
      const l = v.toLowerCase();
      return TRUE.has(l) ? ok(true) : FALSE.has(l) ? ok(false) : no;
    }
    case 'date': {
      const m = DATE.exec(v);
      return m && validDate(Number(m[1]), Number(m[2]), Number(m[3])) ? ok(v) : no;
    }
    case 'timestamp': {
      const m = TIMESTAMP.exec(v);
      if (!m) return no;
      const [y, mo, d] = m[1]!.split('-').map(Number) as [number, number, number];
      if (!validDate(y, mo, d)) return no;
      // Fractional seconds only after seconds (`17:22.5` is not a time).
      if (m[3] !== undefined && m[2]!.length !== 8) return no;
      // No offset means UTC (never the server's local time zone). Whole seconds through Date (an
      // offset moves whole minutes), then the fraction to the microsecond, as PostgreSQL keeps it
      // (finer digits rounded, as it rounds them); always six digits, so text order is time order.
      const whole = Date.parse(`${m[1]}T${m[2] ?? '00:00'}${offset(m[4])}`);
      if (Number.isNaN(whole)) return no;
      const digits = (m[3] ?? '').padEnd(7, '0');
      const micros = Number(digits.slice(0, 6)) + (digits[6]! >= '5' ? 1 : 0);
      const iso = new Date(whole + Math.floor(micros / 1000)).toISOString();
      // Rounding or an offset may leave the years SQL takes (0001–9999).
      if (!/^\d{4}-/.test(iso) || iso.startsWith('0000')) return no;
      return ok(`${iso.slice(0, -1)}${String(micros % 1000).padStart(3, '0')}Z`);
    }
    case 'time':
      return TIME.test(v) ? ok(v) : no;
    case 'json':
      try {
        JSON.parse(raw);
        return ok(raw);
      } catch {
        return no;
      }
    case 'uuid':
      return UUID.test(v) ? ok(v.toLowerCase()) : no;
  }
}
