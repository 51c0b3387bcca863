/**
 * Telling a database that lost its `CURRENT` file from a new one, before RocksDB is asked to open it.
 * RocksDB finds a database through `CURRENT` (the name of its newest manifest). Without it, an open
 * with `createIfMissing` starts a new, empty database in the same directory, and a later open deletes
 * the old database's files as obsolete: one lost 16-byte file and two commands (a retry, a restarting
 * service) lost 13,388 events in the disaster-recovery QA round (finding 1), where writing the
 * manifest's name back into `CURRENT` would have recovered all of them. So a directory holding
 * RocksDB's files but no `CURRENT` is refused, and nothing in it is changed.
 */
import { readdir } from 'node:fs/promises';
import { err, type EventDbxError } from '../../core/errors.js';
import { ROCKSDB_CURRENT, isRocksDbFile } from './files.js';

const MANIFEST = /^MANIFEST-(\d+)$/;

/** The database files to name in the message: the first few, sorted. */
const SHOWN = 4;

/**
 * Why the database at `location` must not be opened (its `CURRENT` is missing while its other files
 * are there), or undefined: a directory that does not exist, or holds none of RocksDB's files (a new
 * store), or holds `CURRENT` (RocksDB's own checks then apply, and a damaged `CURRENT` fails the open
 * without creating anything).
 */
export async function missingCurrent(location: string): Promise<EventDbxError | undefined> {
  let names: string[];
  try {
    names = await readdir(location);
  } catch {
    // Not there (a new store), or not readable: the open reports that in its own words.
    return undefined;
  }
  if (names.includes(ROCKSDB_CURRENT)) return undefined;
  // LOCK alone is left by an open that failed before anything was written.
  const found = names.filter((n) => isRocksDbFile(n) && n !== 'LOCK').sort();
  if (found.length === 0) return undefined;
  const newest = found
    .filter((n) => MANIFEST.test(n))
    .sort((a, b) => Number(MANIFEST.exec(b)![1]) - Number(MANIFEST.exec(a)![1]))[0];
  const shown =
    found.slice(0, SHOWN).join(', ') + (found.length > SHOWN ? ` and ${found.length - SHOWN} more` : '');
  return err('EDBX_ERR_STORE_DAMAGED', {
    path: location,
    reason: `it holds a database's files (${shown}) but not the CURRENT file that names its newest manifest`,
    fix:
      newest === undefined
        ? 'restore a backup'
        : `restore a backup, or on a copy of the data dir (\`cp -a\`) write the newest manifest's name into CURRENT (\`echo ${newest} > CURRENT\`) and run \`eventdbx aggregate verify\``,
  });
}

/** What to do about damage RocksDB reports: a restart does not help. */
const DAMAGE_FIX =
  'restore a backup (README "Backup and restore"); keep this data dir as it is, and look into it or try a repair only on a copy (`cp -a`)';

/** RocksDB's texts for a file of the database that is gone (a table, a manifest). */
const MISSING_FILE =
  /IO error: No such file or directory: While open(?:ing)? a file for [a-z ]+: (.*\/)?((?:\d+\.sst|MANIFEST-\d+))(?:: No such file or directory)?/;

/** One line of the engine's text: RocksDB adds a second (`The file … may be corrupted.`). */
const oneLine = (text: string): string =>
  text
    .replace(/\s*\n\s*/g, '; ')
    .replace(/\s+/g, ' ')
    .trim();

/**
 * EDBX_ERR_STORE_DAMAGED for an error of RocksDB that says its files are damaged (status Corruption,
 * the binding's LEVEL_CORRUPTION; or a table or manifest it needs gone), undefined for any other.
 * `read`: met by a read of an open store, not by the open. `location` names the data dir.
 *
 * @example
 * damageOf({ code: 'LEVEL_CORRUPTION', message: 'Corruption: block checksum mismatch … in /d/000008.sst' }, '/d', true);
 * // data dir /d is damaged: a read failed: Corruption: block checksum mismatch …; restore a backup …
 */
export function damageOf(
  chain: ReadonlyArray<{ readonly code?: unknown; readonly message?: unknown }>,
  location: string,
  read: boolean,
): EventDbxError | undefined {
  const inner = chain.at(-1);
  const text = typeof inner?.message === 'string' ? inner.message : '';
  const corrupt = chain.some((c) => c.code === 'LEVEL_CORRUPTION') || /^Corruption: /.test(text.trimStart());
  const missing = MISSING_FILE.exec(text);
  if (!corrupt && !(missing && !read)) return undefined;
  const reason = corrupt
    ? `RocksDB reports ${oneLine(text)}`
    : `the database's file ${missing![2]} is missing (${oneLine(text)})`;
  return err('EDBX_ERR_STORE_DAMAGED', { path: location, reason, fix: DAMAGE_FIX, read });
}
