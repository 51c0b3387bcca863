/**
 * A backup copied over another store's files (QA disaster-recovery finding 8). `cp -a backup/. data/`
 * replaces the files both have, and leaves the others: the old store's write-ahead log among them,
 * which RocksDB replays onto the backup when it opens, and the old tables, which it then deletes as
 * obsolete. The store that results is neither, and the open that made it has rewritten the directory.
 *
 * So a backup lists its database files and their sizes in `backup.json`, and while a restored copy
 * is as the backup wrote it (its `CURRENT` names the backup's manifest: nothing has opened the copy
 * since), its database files must be exactly those: one more, one missing or one of another size is
 * refused before RocksDB opens anything, and nothing in the data dir is changed. Once a command has
 * opened the copy, its files are its own (new logs and manifests), and are no longer compared.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { type EventDbxError, err, shellWord } from '../core/errors.js';
import { ROCKSDB_CURRENT, isRocksDbFile } from '../storage/rocksdb/files.js';
import { readMarker } from './restored.js';

/** RocksDB's lock and info logs: not part of a database's contents. */
const incidental = (name: string): boolean =>
  name === 'LOCK' || name === 'LOG' || name.startsWith('LOG.old.');

/** The database files of `dir` with their sizes (for `backup.json`). */
export async function databaseFiles(dir: string): Promise<Record<string, number>> {
  const files: Record<string, number> = {};
  for (const name of (await readdir(dir)).sort()) {
    if (!isRocksDbFile(name) || incidental(name)) continue;
    files[name] = (await stat(path.join(dir, name))).size;
  }
  return files;
}

const SHOWN = 4;
const named = (names: readonly string[]): string =>
  names.slice(0, SHOWN).join(', ') + (names.length > SHOWN ? ` and ${names.length - SHOWN} more` : '');

/**
 * Why the restored backup in `dataDir` must not be opened (it holds database files the backup did
 * not write, or lacks some it did), or undefined: no `backup.json`, one that lists no files (an older
 * backup; or damaged: the server's start names that), or a copy opened since it was made.
 */
export async function mixedRestore(dataDir: string): Promise<EventDbxError | undefined> {
  let files: Readonly<Record<string, number>> | undefined;
  let current: string;
  try {
    files = (await readMarker(dataDir))?.files;
    if (files === undefined) return undefined;
    current = (await readFile(path.join(dataDir, ROCKSDB_CURRENT), 'utf8')).trim();
  } catch {
    return undefined; // told by what reads them next (a garbled marker, a missing CURRENT)
  }
  if (!(current in files)) return undefined;
  const names = await readdir(dataDir);
  const extra = names.filter((n) => isRocksDbFile(n) && !incidental(n) && !(n in files)).sort();
  const missing = Object.keys(files).filter((n) => !names.includes(n));
  const resized: string[] = [];
  for (const [name, size] of Object.entries(files)) {
    if (missing.includes(name)) continue;
    const now = (await stat(path.join(dataDir, name))).size;
    if (now !== size) resized.push(`${name} has ${now} bytes, the backup's ${size}`);
  }
  let reason: string;
  if (extra.length > 0)
    reason = `it is a restored backup (backup.json) but also holds database files the backup does not have (${named(extra)}): a backup copied over another store's files mixes the two (the other store's write-ahead log would be replayed onto it)`;
  else if (missing.length > 0)
    reason = `it is a restored backup (backup.json) but lacks database files of the backup (${named(missing)}): the copy is incomplete`;
  else if (resized.length > 0)
    reason = `it is a restored backup (backup.json) but ${named(resized)}: the copy is incomplete or altered`;
  else return undefined;
  return err('EDBX_ERR_STORE_DAMAGED', {
    path: dataDir,
    reason,
    fix: `restore into an empty directory: move this one aside and copy the backup again (\`cp -a <backup> ${shellWord(dataDir)}\`)`,
  });
}
