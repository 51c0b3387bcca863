/**
 * Making a directory and its missing parents one level at a time. Node's `mkdir(dir, { recursive:
 * true })` never returns where the system refuses an entry under a parent that exists with ENOENT
 * (`/proc/x/y`, `/sys/…`): it tries the parent again, finds it, tries the child again, for ever, with a
 * core spinning. Here every error but "it exists already" is final, and thrown as Node's own.
 */
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * Make `dir` (and each missing parent, with `mode`) unless it is a directory already. Throws the
 * `mkdir`/`stat` error (ENOENT, EACCES, EROFS, …), or ENOTDIR when `dir` or a parent is not a
 * directory, as `mkdir(dir, { recursive: true })` would have.
 *
 * @example
 * makeDir('/srv/edbx/out/csv', 0o700);
 */
export function makeDir(dir: string, mode?: number): void {
  const missing: string[] = [];
  for (let at = path.resolve(dir); ;) {
    let found;
    try {
      found = statSync(at);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (found) {
      if (!found.isDirectory()) throw notADirectory(at);
      break;
    }
    missing.push(at);
    const parent = path.dirname(at);
    if (parent === at) break;
    at = parent;
  }
  for (const at of missing.reverse()) {
    try {
      mkdirSync(at, mode === undefined ? undefined : { mode });
    } catch (e) {
      // Made meanwhile by someone else: fine if it is a directory.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || !statSync(at).isDirectory()) throw e;
    }
  }
}

function notADirectory(at: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${at}'`), {
    code: 'ENOTDIR',
    errno: -20,
    syscall: 'mkdir',
    path: at,
  });
}
