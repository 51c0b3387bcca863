/**
 * Which process a PID is, from /proc (Linux): a PID file outlives its server after `kill -9` or a
 * reboot, and the PID may since belong to another process. Where /proc cannot be read (another OS),
 * nothing is known and callers fall back to "a process with that PID exists".
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';

export interface ProcessFacts {
  /** One-letter state: R, S, D, Z (zombie: exited, not yet reaped), X (dead), … */
  readonly state: string;
  /** Start time in clock ticks since boot: with the PID, names one process for the life of the system. */
  readonly start: string;
}

export function processFacts(pid: number): ProcessFacts | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid … starttime …": comm may hold spaces and parentheses, so fields are
  // counted after its last ')'. starttime is field 22; state, field 3, is the first after comm.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const start = fields[19];
  return state && start ? { state, start } : undefined;
}

/** What /proc shows after the path of an open file that was removed. */
export const DELETED = ' (deleted)';

/**
 * Where the files `pid` holds open are named `LOCK` (its RocksDB databases' lock files), each as /proc
 * shows it (ending in DELETED when removed); [] when unreadable (another user's process, gone, no /proc).
 */
export function lockFiles(pid: number | 'self'): string[] {
  const found: string[] = [];
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return found;
  }
  for (const fd of fds) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      const name = target.endsWith(DELETED) ? target.slice(0, -DELETED.length) : target;
      if (path.basename(name) === 'LOCK') found.push(target);
    } catch {
      // closed meanwhile
    }
  }
  return found;
}
