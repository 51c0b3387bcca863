/**
 * This process's open-files limit: the soft RLIMIT_NOFILE, which Node raises to the hard one as it
 * starts (so `ulimit -n`, or systemd's `LimitNOFILE=`, sets it). Node has no getrlimit: on Linux it is
 * read from /proc/self/limits; elsewhere it is unknown and nothing is checked against it.
 */
import { readFileSync } from 'node:fs';

/**
 * The soft limit of the `Max open files` line of a /proc/<pid>/limits text; undefined when the line
 * is missing or says `unlimited`.
 *
 * @example
 * parseOpenFilesLimit('Max open files            1024                 4096                 files');
 * // 1024
 */
export function parseOpenFilesLimit(limits: string): number | undefined {
  const soft = /^Max open files\s+(\S+)/m.exec(limits)?.[1];
  if (soft === undefined || !/^\d+$/.test(soft)) return undefined;
  return Number(soft);
}

/**
 * This process's open-files limit, or undefined where it cannot be read (not Linux, no /proc, no
 * descriptor left to read it with) or is unlimited. Read it early: it is what EMFILE is about.
 */
export function readOpenFilesLimit(
  read: () => string = () => readFileSync('/proc/self/limits', 'utf8'),
): number | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    return parseOpenFilesLimit(read());
  } catch {
    return undefined;
  }
}
