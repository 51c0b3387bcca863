/**
 * Naming a file of the data dir that the running user may not open (disaster-recovery QA finding 11):
 * a restore copied as root leaves files owned by root in a data dir that belongs to the service
 * account, and the open then fails with EACCES. RocksDB's text blames no one and the old message
 * blamed the directory; this one names the file, its owner and the command that gives the files back.
 */
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { type EventDbxError, err } from '../core/errors.js';

/** The account name of `uid` from /etc/passwd; undefined when it has none there. */
export function accountName(uid: number): string | undefined {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (name && id === String(uid)) return name;
    }
  } catch {
    // no /etc/passwd (accounts from a directory service): the uid alone
  }
  return undefined;
}

const who = (uid: number): string => {
  const name = accountName(uid);
  return name === undefined ? `uid ${uid}` : `${name} (uid ${uid})`;
};

/** The errno codes of a file the process may not open. */
export const DENIED = new Set(['EACCES', 'EPERM']);

/**
 * EDBX_ERR_DATA_FILE_ACCESS for `file` (in the data dir `dataDir`) that could not be opened to `op`
 * (`read`, `write`) with `errno`; undefined when the file cannot be looked at (then the caller's own
 * error stands: a directory that cannot be searched is the directory's problem).
 *
 * @example
 * fileAccessError('/var/lib/eventdbx/000008.sst', '/var/lib/eventdbx', 'read', 'EACCES');
 * // cannot read /var/lib/eventdbx/000008.sst (EACCES): it belongs to root (uid 0), not to eventdbx …
 */
export function fileAccessError(
  file: string,
  dataDir: string,
  op: 'read' | 'write' | 'open',
  errno: string,
): EventDbxError | undefined {
  const euid = process.geteuid?.();
  if (euid === undefined) return undefined; // no uids (Windows)
  let owner: number;
  let mode: number;
  try {
    ({ uid: owner, mode } = statSync(file));
  } catch {
    return undefined;
  }
  const user = who(euid);
  const dir = path.resolve(dataDir);
  if (owner === euid)
    return err('EDBX_ERR_DATA_FILE_ACCESS', {
      file,
      op,
      errno,
      own: true,
      user,
      dir,
      mode: `0${(mode & 0o777).toString(8).padStart(3, '0')}`,
    });
  return err('EDBX_ERR_DATA_FILE_ACCESS', {
    file,
    op,
    errno,
    owner: who(owner),
    user,
    chown: accountName(euid) ?? String(euid),
    dir,
  });
}
