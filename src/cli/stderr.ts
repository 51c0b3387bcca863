/**
 * What the CLI writes to stderr besides its output: warnings and the error line. In the daemon child
 * (the `start --foreground` that `start` spawns) stderr is the server's log, `<data-dir>/eventdbx.log`,
 * whose lines are JSON in pino's format: there each warning or error is one such line, so a log
 * shipper reading JSON lines never drops or rejects it. Once the server opened its log (which SIGHUP
 * reopens after a rotation, see server/log-file.ts) they are written through it, like its own lines.
 */
import { logLine } from '../server/log-file.js';

/** Where the daemon's log lines go: undefined while stderr is a person's (not the daemon's log). */
let intoLog: ((line: string) => void) | undefined;

/**
 * From now on stderr is the daemon's JSON-lines log (the daemon child's `start` says so first), and
 * its lines go to `write` (by default stderr itself; the log file once the daemon opened it).
 */
export function stderrIsLog(write: (line: string) => void = (line) => void process.stderr.write(line)): void {
  intoLog = write;
}

/** A warning: `warning: …` for a person, one `warn` line in the daemon's log (with `fields`). */
export function warn(text: string, fields: Record<string, unknown> = {}): void {
  if (intoLog) intoLog(logLine('warn', text, fields));
  else process.stderr.write(`warning: ${text}\n`);
}

/** The error line of a failed command: `error: … [CODE]` for a person, one `error` line in the log. */
export function errorLine(message: string, code: string): void {
  if (intoLog) intoLog(logLine('error', message, { code }));
  else process.stderr.write(`error: ${message} [${code}]\n`);
}
