/**
 * The temporary directory a backup is written in, beside its target, and what is left of one after a
 * crash (QA disaster-recovery finding 7). A backup removes its temporary directory when it fails or
 * is cancelled, but a process killed (`kill -9`, a crash, the machine going down) cannot: the
 * directory, a copy of the store, stays. So the name says whose it is,
 * `.<target>.backup-<host>-<pid>-<random>`, and the next backup into the same directory removes those
 * of this host whose process is gone. One of another host (a backup volume shared over the network)
 * or of a process still running (a backup in progress) is left alone, and so is anything that is not
 * a directory of a backup's files only.
 */
import { randomBytes } from 'node:crypto';
import { lstat, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isRocksDbFile } from '../storage/rocksdb/files.js';
import { KEYRING_COPY } from './keyring-copy.js';
import { BACKUP_MARKER } from './restored.js';

/** This machine's name as a temporary directory's name carries it: `[A-Za-z0-9.-]`, the rest `_`. */
const HOST = os.hostname().replace(/[^A-Za-z0-9.-]/g, '_') || 'host';

/** `.<target>.backup-<host>-<pid>-<8 hex>`; backups of earlier versions had no `<host>-`. */
const TEMP = /^\.(.+)\.backup-(?:([A-Za-z0-9._-]+)-)?([0-9]+)-[0-9a-f]{8}$/;

/** The temporary directory for a backup into `dest`, named after this host and process. */
export function tempDirFor(dest: string): string {
  const name = `.${path.basename(dest)}.backup-${HOST}-${process.pid}-${randomBytes(4).toString('hex')}`;
  return path.join(path.dirname(dest), name);
}

/** Whether a process with that PID exists (one that took the PID over since keeps the directory). */
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** Only what a backup writes: RocksDB's files, the keyring copy and `backup.json`. */
async function holdsBackupFilesOnly(dir: string): Promise<boolean> {
  for (const entry of await readdir(dir, { withFileTypes: true }))
    if (
      !entry.isFile() ||
      !(isRocksDbFile(entry.name) || entry.name === KEYRING_COPY || entry.name === BACKUP_MARKER)
    )
      return false;
  return true;
}

/**
 * Remove, from `parent`, the temporary directories of backups of this host whose process is gone;
 * answers their paths. Anything that cannot be read or removed is left as it is.
 */
export async function removeStaleTemps(parent: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(parent);
  } catch {
    return []; // not there yet: nothing left in it
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP.exec(name);
    if (!m) continue;
    const [, , host, pid] = m;
    if ((host !== undefined && host !== HOST) || alive(Number(pid))) continue;
    const dir = path.join(parent, name);
    try {
      if (!(await lstat(dir)).isDirectory() || !(await holdsBackupFilesOnly(dir))) continue;
      await rm(dir, { recursive: true, force: true });
      removed.push(dir);
    } catch {
      // left for the next backup, or for the operator
    }
  }
  return removed;
}
