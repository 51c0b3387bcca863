/** CLI output: human-readable by default, JSON with --json; colour only on a TTY without NO_COLOR. */
import type { EventIssuer, EventRecord } from '../core/event.js';

export const useColor = (): boolean => Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;

const paint = (code: number) => (s: string) => (useColor() ? `\u001b[${code}m${s}\u001b[0m` : s);
export const bold = paint(1);
export const dim = paint(2);
export const green = paint(32);
export const red = paint(31);

const ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * Text from data made safe for a terminal: control characters (C0, DEL, C1) and line separators are
 * shown as escapes (`\n`, `\u001b`), so a stored value cannot move the cursor, recolour the screen or
 * start a fake line. Every human output of stored text goes through this one function.
 */
export function printable(value: unknown): string {
  return String(value).replace(
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g,
    (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export type Row = Record<string, string | number | boolean>;

/** Each column as wide as its header and its widest cell in `rows`. */
const columnWidths = (rows: readonly Row[], cols: readonly string[]): number[] =>
  // A loop, not Math.max(...rows): one argument per row overflows the stack above ~125k rows.
  cols.map((c) => rows.reduce((w, r) => Math.max(w, cell(r, c).length), c.length));
const cell = (r: Row, c: string) => printable(r[c] ?? '');
const padded = (cells: readonly string[], widths: readonly number[]) =>
  cells
    .map((c, i) => c.padEnd(widths[i] ?? 0))
    .join('  ')
    .trimEnd();
const rowLine = (r: Row, cols: readonly string[], widths: readonly number[]) =>
  padded(
    cols.map((c) => cell(r, c)),
    widths,
  );
const headLine = (cols: readonly string[], widths: readonly number[]) =>
  bold(
    padded(
      cols.map((c) => c.toUpperCase()),
      widths,
    ),
  );

export function table(rows: Row[], columns?: string[]): string {
  if (rows.length === 0) return dim('(none)');
  const cols = columns ?? Object.keys(rows[0]!);
  const widths = columnWidths(rows, cols);
  return [headLine(cols, widths), ...rows.map((r) => rowLine(r, cols, widths))].join('\n');
}

/** Rows a streamed table measures its columns on before it prints its header. */
const TABLE_SAMPLE = 1000;

/**
 * A table printed as its rows come (`aggregate list`): the same text as `table` up to `sample` rows.
 * The columns are as wide as in the first `sample` rows, which wait for the header; a wider cell
 * after them pushes the rest of its own row only. `rows` and `end` return the text to print.
 */
export function tableStream(sample = TABLE_SAMPLE): { rows(rows: readonly Row[]): string; end(): string } {
  let held: Row[] = [];
  let cols: string[] | undefined;
  let widths: number[] = [];
  const lines = (rows: readonly Row[]) => rows.map((r) => `${rowLine(r, cols!, widths)}\n`);
  const start = () => {
    cols = Object.keys(held[0]!);
    widths = columnWidths(held, cols);
    const text = [`${headLine(cols, widths)}\n`, ...lines(held)].join('');
    held = [];
    return text;
  };
  return {
    rows(rows) {
      if (cols) return lines(rows).join('');
      for (const r of rows) held.push(r);
      return held.length >= sample ? start() : '';
    },
    end: () => (cols ? '' : held.length > 0 ? start() : `${dim('(none)')}\n`),
  };
}

export function keyValues(obj: Record<string, unknown>): string {
  const width = Object.keys(obj).reduce((w, k) => Math.max(w, k.length), 0);
  return Object.entries(obj)
    .map(
      ([k, v]) =>
        `${dim(printable(k).padEnd(width))}  ${printable(typeof v === 'object' ? JSON.stringify(v) : v)}`,
    )
    .join('\n');
}

/** `doctors/dr-house (edbx_Q2x9fA)`: who wrote an event, and with which token (none on the host). */
export function issuerLabel(by: EventIssuer): string {
  return printable(`${by.group}/${by.user}${by.token === undefined ? '' : ` (${by.token})`}`);
}

export function formatEvent(e: EventRecord): string {
  const who = issuerLabel(e.metadata.issued_by);
  const fields = Object.entries(e.payload)
    .map(([k, v]) => printable(`${k}=${JSON.stringify(v)}`))
    .join(' ');
  return `${bold(`v${e.version}`)} ${e.event_type} ${dim(`#${e.position} ${e.metadata.created_at} by ${who}`)}\n    ${fields || dim('(empty payload)')}`;
}

/** `1 event`, `2 events`. */
export const count = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? '' : 's'}`;
