/**
 * What the PostgreSQL sink makes of the driver's errors: whether the connection is still usable, and
 * the delivery failure (retried, or the data's fault and dead-lettered) with a reason fit for the log.
 * PostgreSQL's own messages can quote the data (`invalid input syntax for type integer: "…"`, a
 * trigger's `RAISE` of a column): those are replaced by the SQLSTATE, its condition and the objects
 * the error names (table, column, constraint, type), never a value. Pure: no I/O.
 */
import { NotATable } from '../sql/shape.js';
import {
  type DeliveryItem,
  DeliveryFailure,
  isNetworkError,
  reasonOf,
  rejectedFailure,
  transientFailure,
  unreachableFailure,
} from '../types.js';

/**
 * SQLSTATE classes whose messages name only objects, types, settings and the connection: connection
 * (08), unsupported feature (0A), transaction state (25), authorization (28), missing database or
 * schema (3D, 3F), rollback (40), syntax and access (42), resources and limits (53, 54), object state
 * (55), operator intervention (57) and system errors (58). Data (22), constraint (23), PL/pgSQL (P0),
 * internal (XX) and every other class may quote a value.
 */
const PLAIN_CLASSES = new Set(['08', '0A', '25', '28', '3D', '3F', '40', '42', '53', '54', '55', '57', '58']);

/** Condition names of the SQLSTATEs a mirror meets (PostgreSQL, Appendix A), then of their classes. */
const CONDITIONS: Readonly<Record<string, string>> = {
  '22001': 'string data right truncation',
  '22003': 'numeric value out of range',
  '22007': 'invalid datetime format',
  '22008': 'datetime field overflow',
  '22021': 'character not in repertoire',
  '22P02': 'invalid text representation',
  '22P05': 'untranslatable character',
  '23502': 'not null violation',
  '23503': 'foreign key violation',
  '23505': 'unique violation',
  '23514': 'check violation',
  '23P01': 'exclusion violation',
  '42501': 'insufficient privilege',
  P0001: 'raise exception',
  '08': 'connection exception',
  '09': 'triggered action exception',
  '0A': 'feature not supported',
  '21': 'cardinality violation',
  '22': 'data exception',
  '23': 'integrity constraint violation',
  '25': 'invalid transaction state',
  '27': 'triggered data change violation',
  '28': 'invalid authorization specification',
  '2F': 'SQL routine exception',
  '38': 'external routine exception',
  '39': 'external routine invocation exception',
  '3D': 'invalid catalog name',
  '3F': 'invalid schema name',
  '40': 'transaction rollback',
  '42': 'syntax error or access rule violation',
  '44': 'with check option violation',
  '53': 'insufficient resources',
  '54': 'program limit exceeded',
  '55': 'object not in prerequisite state',
  '57': 'operator intervention',
  '58': 'system error',
  P0: 'PL/pgSQL error',
  XX: 'internal error',
};

/** The fields of the driver's DatabaseError that are read here. */
export interface ServerError {
  readonly code: string;
  readonly message?: unknown;
  readonly where?: unknown;
  readonly table?: unknown;
  readonly column?: unknown;
  readonly constraint?: unknown;
  readonly dataType?: unknown;
}

/** The SQLSTATE of an error PostgreSQL itself reported (the driver's DatabaseError), else undefined. */
export function sqlState(e: unknown): string | undefined {
  const { code, severity } = (e ?? {}) as { code?: unknown; severity?: unknown };
  // Node's own errors have codes too (ENOTFOUND, EPIPE, ERR_INVALID_URL): only the server sends a severity.
  return typeof severity === 'string' && typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)
    ? code
    : undefined;
}

/** An error PostgreSQL reported for a statement, as opposed to a broken connection. */
export function isSqlError(e: unknown): boolean {
  const code = sqlState(e);
  return code !== undefined && !/^(08|57|53|58)/.test(code);
}

/**
 * The reason a server error is logged and dead-lettered with. Its message is kept when its class
 * never quotes data and it was not raised inside a function (`where` set: a trigger can raise any
 * SQLSTATE with any text); otherwise the condition and the objects it names stand in for it.
 */
export function serverReason(e: ServerError): string {
  const code = e.code;
  if (PLAIN_CLASSES.has(code.slice(0, 2)) && e.where === undefined)
    return `${reasonOf(e)} (SQLSTATE ${code})`;
  const condition = CONDITIONS[code] ?? CONDITIONS[code.slice(0, 2)] ?? 'error';
  const named = (
    [
      ['table', e.table],
      ['column', e.column],
      ['constraint', e.constraint],
      ['type', e.dataType],
    ] as const
  )
    .filter(([, v]) => typeof v === 'string' && v !== '')
    .map(([k, v]) => `${k} ${JSON.stringify(v)}`);
  return `${condition} (SQLSTATE ${code}${named.length > 0 ? `, ${named.join(', ')}` : ''}; PostgreSQL's message is left out: it can quote values)`;
}

/**
 * SQLSTATEs of a server that takes no statement now, whatever it is: a connection exception (08), a
 * shutdown, a crash, a database starting up or dropped (57P01-57P05), too many connections (53300);
 * and of one that did not answer in time: a statement cancelled (57014), by the sink's own
 * `statement_timeout` (a lock held elsewhere, an overloaded server) or by an administrator. Like the
 * driver's `Query read timeout`, that says nothing about the event.
 */
const UNAVAILABLE = /^(08|57P|57014|53300)/;

/** The driver's own errors for a connection that broke, timed out or was never made (pg, pg-pool). */
const DRIVER_CONNECTION =
  /^(Connection terminated|Query read timeout|timeout expired|timeout exceeded when trying to connect|Client has encountered a connection error|Client was closed)/;

/** The reason of any driver error: a server error's without quoting data, else the driver's. */
const reasonFor = (e: unknown): string => (sqlState(e) ? serverReason(e as ServerError) : reasonOf(e));

/**
 * No connection could be had (from the pool): refused, timed out, a name that does not resolve, TLS, a
 * password or database the server refuses, a server starting up. No event was sent, so none is to
 * blame: the destination is unreachable until that changes.
 */
export const connectFailure = (e: unknown): DeliveryFailure => unreachableFailure('postgres', reasonFor(e));

/**
 * Errors the same rows meet however often they are sent: data exceptions (22), integrity violations
 * (23), program limits (54: a table's 1600 columns, a row or index entry too big), and a table's name
 * taken by something rows cannot go into (sql/shape.ts; 42809 wrong object type, such as an index or a
 * sequence; 42P10, a table with no unique key on `id` for the upsert's ON CONFLICT).
 */
const PERMANENT = /^(22|23|54|42809$|42P10$)/;

/**
 * Permanent errors (PERMANENT) are the event's fault, or its table's: retrying cannot help. In a
 * batch the failing event is unknown, so the host isolates it. A connection that broke, or a server
 * that takes no statements (UNAVAILABLE), makes the destination unreachable: retried without counting
 * attempts. Anything else (permissions, a missing schema, a deadlock) is retried, then dead-lettered.
 */
export function classify(e: unknown, items: readonly DeliveryItem[]): DeliveryFailure {
  if (e instanceof DeliveryFailure) return e;
  const code = sqlState(e);
  // Below SQL (refused, reset, timed out, TLS) the driver's message names the connection only.
  const reason = reasonFor(e);
  if (code ? UNAVAILABLE.test(code) : isNetworkError(e) || DRIVER_CONNECTION.test(reasonOf(e)))
    return unreachableFailure('postgres', reason);
  if ((code && PERMANENT.test(code)) || e instanceof NotATable) {
    return items.length === 1
      ? rejectedFailure('postgres', items[0]!.record, reason, 0)
      : rejectedFailure('postgres', items[0]!.record, reason, undefined);
  }
  return transientFailure('postgres', reason, 0);
}
