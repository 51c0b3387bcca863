/**
 * A server still running on a data dir that was moved or removed from under it (QA disaster-recovery
 * finding 9). The PID file moves with the data dir (`mv .eventdbx .eventdbx.broken`, the runbook's
 * step skipped its `stop`), so `status` found none at the old path and said "not running", `start`
 * only that the port was taken, while the server went on acknowledging writes into the moved files,
 * none of which would be in the restore.
 *
 * Such a server still holds its database's `LOCK` open, and /proc says where that file is now (Linux:
 * elsewhere nothing is found). A process of this user whose `LOCK` is in another directory, whose PID
 * file names that process and records `dataDir` as the data dir it was started on, is that server; so
 * is one whose `LOCK` was `dataDir/LOCK` and is deleted (the data dir removed under it).
 */
import { readFileSync, readdirSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { PID_FILE, type PidInfo } from '../server/daemon-files.js';
import { DELETED, lockFiles } from '../server/proc.js';
import { readNoFollow } from '../fs/no-follow.js';

/** A server started on a data dir whose files are now elsewhere (`now`), or deleted (`now` undefined). */
export interface MovedServer {
  readonly pid: number;
  readonly now: string | undefined;
  readonly port: number | undefined;
}

/** The command line of `pid` as its arguments; undefined when it cannot be read. */
function argv(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return undefined;
  }
}

const canonical = (p: string): string => {
  try {
    return realpathSync(p);
  } catch {
    return path.resolve(p);
  }
};

/**
 * The server started on `dataDir` that runs on its files elsewhere now, or undefined (none, or not
 * knowable here). Only `eventdbx start --foreground` processes (what a daemon runs) are looked at.
 */
export async function serverOnMovedDataDir(dataDir: string): Promise<MovedServer | undefined> {
  const wanted = path.resolve(dataDir);
  let pids: number[];
  try {
    pids = readdirSync('/proc')
      .filter((n) => /^[0-9]+$/.test(n))
      .map(Number)
      .filter((pid) => pid !== process.pid);
  } catch {
    return undefined; // no /proc
  }
  for (const pid of pids) {
    const args = argv(pid);
    if (!args?.includes('start') || !args.includes('--foreground')) continue;
    for (const lock of lockFiles(pid)) {
      if (lock.endsWith(DELETED)) {
        const was = path.dirname(lock.slice(0, -DELETED.length));
        if (was === wanted || was === canonical(wanted)) return { pid, now: undefined, port: undefined };
        continue;
      }
      const dir = path.dirname(lock);
      if (dir === canonical(wanted)) continue; // running on it where it is: the PID file says so
      let info: Partial<PidInfo>;
      try {
        info = JSON.parse(await readNoFollow(path.join(dir, PID_FILE))) as Partial<PidInfo>;
      } catch {
        continue;
      }
      if (info.pid === pid && typeof info.data_dir === 'string' && path.resolve(info.data_dir) === wanted)
        return { pid, now: dir, port: info.port };
    }
  }
  return undefined;
}
