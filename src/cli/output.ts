/** CLI output: human-readable by default, JSON with --json; colour only on a TTY without NO_COLOR. */
import type { EventRecord } from '../core/event.js';

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

export function table(rows: Array<Record<string, string | number | boolean>>, columns?: string[]): string {
  if (rows.length === 0) return dim('(none)');
  const cols = columns ?? Object.keys(rows[0]!);
  const cell = (r: Record<string, unknown>, c: string) => printable(r[c] ?? '');
  // A loop, not Math.max(...rows): one argument per row overflows the stack above ~125k rows.
  const widths = cols.map((c) => rows.reduce((w, r) => Math.max(w, cell(r, c).length), c.length));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [
    bold(line(cols.map((c) => c.toUpperCase()))),
    ...rows.map((r) => line(cols.map((c) => cell(r, c)))),
  ].join('\n');
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

export function formatEvent(e: EventRecord): string {
  const who = printable(`${e.metadata.issued_by.group}/${e.metadata.issued_by.user}`);
  const fields = Object.entries(e.payload)
    .map(([k, v]) => printable(`${k}=${JSON.stringify(v)}`))
    .join(' ');
  return `${bold(`v${e.version}`)} ${e.event_type} ${dim(`#${e.position} ${e.metadata.created_at} by ${who}`)}\n    ${fields || dim('(empty payload)')}`;
}

/** `1 event`, `2 events`. */
export const count = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? '' : 's'}`;
