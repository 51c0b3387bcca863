/**
 * A table the SQL sinks can write rows into has the fixed columns they create it with. `CREATE TABLE IF
 * NOT EXISTS` leaves any object of the name in place (in PostgreSQL an index such as `<type>_pkey`, in
 * either a view or a table someone else made): its rows could never be written, however often they
 * were retried, so the event is refused at once (the delivery host dead-letters it, or blocks).
 */
import { ROW_COLUMNS } from '../columns.js';

/** Why a table with these columns takes no row of the sink, or undefined: it has every fixed one. */
export function shapeProblem(columns: ReadonlySet<string>): string | undefined {
  const lacking = ROW_COLUMNS.find((c) => !columns.has(c));
  return lacking === undefined ? undefined : `it has no column "${lacking}"`;
}

/** Told apart in the SQLite sink, where errors cross from the writer's thread as code and message. */
export const NOT_A_TABLE = /^".*" is not a table this plugin can write rows into: /;

export class NotATable extends Error {
  /** `why`: `it is an index`, `it has no column "version"`. */
  constructor(table: string, why: string) {
    super(`${JSON.stringify(table)} is not a table this plugin can write rows into: ${why}`);
    this.name = 'NotATable';
  }
}
