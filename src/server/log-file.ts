/**
 * The daemon's log, `<data-dir>/eventdbx.log`. The server's lines and the daemon's own warnings are
 * written through one descriptor that SIGHUP reopens by name, so that `mv eventdbx.log eventdbx.log.1;
 * kill -HUP <pid>` (logrotate's rename and postrotate) sends new lines to a fresh file. The process's
 * stdout and stderr stay the file the daemon was started with (Node cannot replace them): only what
 * Node itself prints (a crash's stack trace, its warnings) goes there, and a crash is also written here.
 */
import { closeSync, fstatSync, ftruncateSync, writeSync } from 'node:fs';
import os from 'node:os';
import { redactTokens } from '../core/tokens.js';
import { openNoFollowSync } from '../fs/no-follow.js';

/** pino's numeric levels, as the server's own lines carry them. */
const LEVELS = { debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const;
export type LineLevel = keyof typeof LEVELS;

/** One line in the log's format (pino's fields first, then `fields`, then `msg`, as pino orders them). */
export function logLine(level: LineLevel, msg: string, fields: Record<string, unknown> = {}): string {
  const line = { level: LEVELS[level], time: Date.now(), pid: process.pid, hostname: os.hostname() };
  return `${JSON.stringify({ ...line, ...fields, msg })}\n`;
}

export class LogFile {
  #fd: number;

  /**
   * Opens (creates) the file for appending, owner-only; throws when it cannot, and
   * EDBX_ERR_FILE_REFUSED when a link or anything but a plain file is in its place (never followed).
   */
  constructor(readonly path: string) {
    this.#fd = openNoFollowSync(path, 'append');
  }

  /**
   * Append one line (a stream for pino: it calls `write`). Synchronous, so a line written just
   * before a crash is on disk. A line the disk refuses (full, over `ulimit -f`) is dropped, never left
   * half-written (the next line would be glued onto it): logging never stops the server, and once a
   * line goes through again the log says how many were dropped.
   */
  write(line: string): void {
    if (this.#dropped > 0) {
      const dropped = logLine(
        'warn',
        `log lines dropped: ${this.#dropped} (the disk refused them: full, or over the file size limit)`,
        { dropped_lines: this.#dropped },
      );
      if (this.#append(dropped)) this.#dropped = 0;
    }
    if (!this.#append(line)) this.#dropped++;
  }

  /** Number of lines dropped since the last one written. */
  #dropped = 0;
  /** A part of a line is left at the end of the file (it could not be cut off): start a new line. */
  #torn = false;

  /** Write `line` whole, or cut off what was written of it; false when it was not written. */
  #append(line: string): boolean {
    const bytes = Buffer.from(this.#torn ? `\n${line}` : line);
    let at = 0;
    try {
      while (at < bytes.length) {
        const n = writeSync(this.#fd, bytes, at);
        if (n <= 0) break;
        at += n;
      }
    } catch {
      // Nowhere to say so now: stderr is the same disk, or the file renamed away.
    }
    if (at === bytes.length) {
      this.#torn = false;
      return true;
    }
    if (at > 0) {
      // Only this process appends to the file: its last `at` bytes are this line's.
      try {
        ftruncateSync(this.#fd, fstatSync(this.#fd).size - at);
      } catch {
        this.#torn = true;
      }
    }
    return false;
  }

  /**
   * Open the file by its name again: a new one when it was renamed or removed. Lines written
   * meanwhile went to the old one (whole: every write is synchronous). Throws, keeping the old
   * descriptor, when the file cannot be opened (data dir not writable; a link put in its place).
   */
  reopen(): void {
    const fd = openNoFollowSync(this.path, 'append');
    const old = this.#fd;
    this.#fd = fd;
    closeSync(old);
  }

  /**
   * Write a crash's reason here before Node prints its report to stderr (which, after a rotation,
   * is the renamed file) and ends the process: the current log always says why the server ended.
   */
  reportCrashes(): void {
    process.on('uncaughtExceptionMonitor', (e, origin) => {
      const error = e instanceof Error ? e : new Error(String(e));
      this.write(
        redactTokens(
          logLine('fatal', `the server crashed (${origin}): ${error.message}`, {
            err: { type: error.name, message: error.message, stack: error.stack },
          }),
        ),
      );
    });
  }
}
