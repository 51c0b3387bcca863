/**
 * What a data dir holds, told apart from anything else (qa-spec #1): `destroy` removes the store's own
 * files only, and refuses a directory that holds no store or holds anything else; a new store is made
 * only in a new or empty directory, never mixed into a directory of other files.
 */
import { type Dirent, lstatSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { rm, rmdir, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { err } from '../core/errors.js';
import { LOG_FILE, PID_FILE, UNCLEAN_SUFFIX } from '../server/daemon-files.js';
import { SOCKET_NAME } from '../server/control.js';
import { ROCKSDB_CURRENT, isRocksDbFile } from '../storage/rocksdb/files.js';
import { ACKNOWLEDGED_HEAD } from '../store/acknowledged.js';
import { BACKUP_MARKER } from '../store/restored.js';
import { KEYRING_COPY } from '../store/secure.js';

/** The files EventDBX keeps in a data dir besides RocksDB's. */
const OWN_FILES: ReadonlySet<string> = new Set([
  KEYRING_COPY,
  ACKNOWLEDGED_HEAD,
  BACKUP_MARKER,
  PID_FILE,
  `${PID_FILE}${UNCLEAN_SUFFIX}`,
  SOCKET_NAME,
]);
const escaped = (name: string) => name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** The log, and what logrotate makes of it (`eventdbx.log.1`, `eventdbx.log.2.gz`, `eventdbx.log-20261127`). */
const LOG = new RegExp(`^${escaped(LOG_FILE)}([.-][0-9]+)*(\\.(gz|bz2|xz|zst))?$`);
/** The temporary file a file of ours is written through, named after the writing process (fs/no-follow.ts). */
const TEMP = /^(.+)\.[0-9]+\.tmp$/;

/** What a data dir holds. */
export interface DataDirEntries {
  /** The store's own entries (EventDBX's files and RocksDB's, the config file when it is there), by name. */
  readonly own: readonly string[];
  /** Everything else, by name (a directory with a trailing `/`). */
  readonly foreign: readonly string[];
  /** A store is there: RocksDB's CURRENT, or the keyring copy every open writes. */
  readonly store: boolean;
  /**
   * An entry only EventDBX makes is there (a store, its log or PID file, the config naming this
   * directory), not merely names RocksDB shares with anything (`LOCK`, `000001.log`): it is ours.
   */
  readonly marked: boolean;
}

const eventDbxFile = (name: string, configName: string | undefined): boolean => {
  if (OWN_FILES.has(name) || LOG.test(name) || name === configName) return true;
  const temp = TEMP.exec(name)?.[1];
  // The config file's temporary file is `.<name>.<pid>.tmp` (config/config.ts).
  return (
    temp !== undefined && (OWN_FILES.has(temp) || (configName !== undefined && temp === `.${configName}`))
  );
};

/**
 * The entries of `dataDir`, or undefined when it does not exist. `configFile` counts as the store's
 * when it is in the directory. Throws EDBX_ERR_NOT_A_DATA_DIR for a file in its place and
 * EDBX_ERR_DATA_DIR_NOT_READABLE when it cannot be listed.
 */
export function readDataDir(dataDir: string, configFile?: string): DataDirEntries | undefined {
  let dirents: Dirent[];
  try {
    dirents = readdirSync(dataDir, { withFileTypes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    // ENOTDIR: a file in its place, or in the place of a parent (then it does not exist).
    if (code === 'ENOTDIR') {
      if (statSync(dataDir, { throwIfNoEntry: false }) === undefined) return undefined;
      throw err('EDBX_ERR_NOT_A_DATA_DIR', { path: dataDir, why: 'not-dir' });
    }
    if (code === 'EACCES' || code === 'EPERM')
      throw err('EDBX_ERR_DATA_DIR_NOT_READABLE', { path: dataDir, reason: code });
    throw e;
  }
  const configName =
    configFile !== undefined && path.dirname(path.resolve(configFile)) === path.resolve(dataDir)
      ? path.basename(configFile)
      : undefined;
  const own: string[] = [];
  const foreign: string[] = [];
  let store = false;
  let marked = false;
  for (const d of dirents) {
    const ours = eventDbxFile(d.name, configName);
    // A directory is never the store's: nothing of ours is one (and it is not removed file by file).
    if (d.isDirectory() || !(ours || isRocksDbFile(d.name))) {
      foreign.push(d.isDirectory() ? `${d.name}/` : d.name);
      continue;
    }
    own.push(d.name);
    const isStore = d.isFile() && (d.name === ROCKSDB_CURRENT || d.name === KEYRING_COPY);
    store ||= isStore;
    marked ||= isStore || ours;
  }
  return { own: own.sort(), foreign: foreign.sort(), store, marked };
}

/** The canonical path, or undefined when there is none (gone, unreadable; no home directory). */
const real = (p: () => string): string | undefined => {
  try {
    return realpathSync(p());
  } catch {
    return undefined;
  }
};

/**
 * Throws unless `destroy` may remove `dataDir` (which exists, holding `entries`): never the root, the
 * home directory, the current directory or a parent of it, whatever they hold; only a directory that
 * is empty or holds a store or files of ours, and nothing else.
 */
export function checkDestroyable(dataDir: string, entries: DataDirEntries): void {
  const dir = real(() => dataDir) ?? path.resolve(dataDir);
  const cwd = real(() => process.cwd());
  const refuse = (what: string, inCwd = false) =>
    err('EDBX_ERR_DESTROY_REFUSED', { path: dataDir, what, in_cwd: inCwd });
  if (dir === path.parse(dir).root) throw refuse('the root directory');
  if (dir === real(() => os.homedir())) throw refuse('your home directory');
  if (cwd === dir) throw refuse('the current directory', true);
  if (cwd !== undefined && cwd.startsWith(dir + path.sep))
    throw refuse(`a parent of the current directory (${cwd})`, true);
  const empty = entries.own.length === 0 && entries.foreign.length === 0;
  if (!empty && !entries.marked) {
    const found = entries.foreign.length > 0 ? entries.foreign : entries.own;
    throw err('EDBX_ERR_NOT_A_DATA_DIR', { path: dataDir, why: 'no-store', found });
  }
  if (entries.foreign.length > 0)
    throw err('EDBX_ERR_NOT_A_DATA_DIR', { path: dataDir, why: 'foreign', found: entries.foreign });
}

/**
 * What may be removed first: RocksDB's files, then EventDBX's, then those that say a store is here,
 * so that a destroy cut short leaves a directory a second destroy still takes for a data dir.
 */
const removalRank = (name: string): number =>
  name === ROCKSDB_CURRENT || name === KEYRING_COPY ? 2 : isRocksDbFile(name) ? 0 : 1;

/**
 * Remove a data dir checked by `checkDestroyable` (its server stopped): its own entries one by one (a
 * link among them is removed, never followed), then the directory itself, empty (`rmdir`: anything
 * put there meanwhile stays, and with it the directory). A data dir that is a link loses its target
 * directory, then the link.
 */
export async function removeDataDir(dataDir: string, configFile?: string): Promise<void> {
  const entries = readDataDir(dataDir, configFile);
  if (entries === undefined) return;
  if (entries.foreign.length > 0)
    throw err('EDBX_ERR_NOT_A_DATA_DIR', { path: dataDir, why: 'foreign', found: entries.foreign });
  const order = [...entries.own].sort((a, b) => removalRank(a) - removalRank(b));
  for (const name of order) await rm(path.join(dataDir, name), { force: true });
  if (lstatSync(dataDir).isSymbolicLink()) {
    await rmdir(realpathSync(dataDir));
    await unlink(dataDir);
  } else await rmdir(dataDir);
}

/**
 * A new store is made only in a new or empty directory, or one holding a store or files of ours
 * (the daemon's log is written before the store is opened): throws EDBX_ERR_NOT_A_DATA_DIR for a
 * directory of other files. One that cannot be listed, or a file in its place, is left to the open
 * to report.
 */
export function checkNewStoreDir(dataDir: string, configFile?: string): void {
  let entries: DataDirEntries | undefined;
  try {
    entries = readDataDir(dataDir, configFile);
  } catch {
    return;
  }
  if (entries === undefined || entries.store || entries.foreign.length === 0) return;
  throw err('EDBX_ERR_NOT_A_DATA_DIR', { path: dataDir, why: 'create', found: entries.foreign });
}
