/**
 * What the CLI writes to stderr besides its output: warnings and the error line. In the daemon child
 * (the `start --foreground` that `start` spawns) stderr is the server's log, `<data-dir>/eventdbx.log`,
 * whose lines are JSON in pino's format: there each warning or error is one such line, so a log
 * shipper reading JSON lines never drops or rejects it.
 */
import os from 'node:os';

let intoLog = false;

/** From now on stderr is the daemon's JSON-lines log (the daemon child's `start` says so first). */
export function stderrIsLog(): void {
  intoLog = true;
}

/** pino's numeric levels, as the server's own lines carry them. */
const LEVELS = { warn: 40, error: 50 } as const;

/** One line in the log's format (pino's fields first, then `fields`, then `msg`, as pino orders them). */
export function logLine(
  level: keyof typeof LEVELS,
  msg: string,
  fields: Record<string, unknown> = {},
): string {
  const line = { level: LEVELS[level], time: Date.now(), pid: process.pid, hostname: os.hostname() };
  return `${JSON.stringify({ ...line, ...fields, msg })}\n`;
}

/** A warning: `warning: …` for a person, one `warn` line in the daemon's log. */
export function warn(text: string): void {
  process.stderr.write(intoLog ? logLine('warn', text) : `warning: ${text}\n`);
}

/** The error line of a failed command: `error: … [CODE]` for a person, one `error` line in the log. */
export function errorLine(message: string, code: string): void {
  process.stderr.write(intoLog ? logLine('error', message, { code }) : `error: ${message} [${code}]\n`);
}
