/**
 * The names RocksDB gives the files of a database directory (its `file/filename.cc`), so that what is
 * the engine's can be told from anything else in a data dir without opening it.
 */

/** The file naming the current MANIFEST: every database RocksDB has opened has one. */
export const ROCKSDB_CURRENT = 'CURRENT';

const NAMES: ReadonlySet<string> = new Set([ROCKSDB_CURRENT, 'IDENTITY', 'LOCK', 'LOG']);
const PATTERNS: readonly RegExp[] = [
  /^[0-9]+\.(log|sst|ldb|blob|dbtmp)$/, // write-ahead logs, tables, blob files, temporary files
  /^(MANIFEST|OPTIONS)-[0-9]+(\.dbtmp)?$/,
  /^LOG\.old\.[0-9]+$/, // info logs (none by default: see rocksdb-engine.ts)
];

/**
 * Whether `name` is one RocksDB gives its files.
 *
 * @example
 * isRocksDbFile('000004.log'); // true
 * isRocksDbFile('notes.txt'); // false
 */
export const isRocksDbFile = (name: string): boolean => NAMES.has(name) || PATTERNS.some((p) => p.test(name));
