/**
 * The RocksDB engine, over `@nxtedition/rocksdb`. `main` is the default column family; `archive` is
 * a second column family tuned for cold data.
 *
 * Durability: a batch is written with `db.batch(ops, { sync })`. This binding ignores `sync` on
 * `put()`/`del()` (they always write unsynced), so every write goes through `batch`. Verified with
 * strace: one fdatasync per `sync: true` batch, none for `sync: false`.
 *
 * The binding writes batches synchronously on the calling thread, so writes go to a worker thread
 * attached to the same database (write-thread.ts), started on the first such write: the event loop
 * stays free during memtable inserts and the fdatasync. A write marked `inline` (the caller has nothing
 * else to do) is made on the main thread when no handed-over write is in flight: a lone append then
 * skips two thread hand-overs (~0.1 ms here). Point reads of a few keys are made on the calling thread
 * too (SYNC_READ_KEYS); larger ones go to libuv's thread pool.
 */
import rocks from '@nxtedition/rocksdb';
import {
  err,
  EventDbxError,
  notedOpenFilesLimit,
  outOfDescriptors,
  throwIfAborted,
} from '../../core/errors.js';
import { SPACES, StorageEngine } from '../engine.js';
import type { PinRange, PinnedRead, RangeOptions, Space, WriteOp, WriteOptions } from '../engine.js';
import { fileAccessError } from '../../fs/file-access.js';
import { damageOf, missingCurrent } from './damaged.js';
import { NativeBatchWriter } from './native-batch.js';
import { holdPrivateUmask } from './private-umask.js';
import { WriteThread, packOps } from './write-thread.js';

const { RocksLevel } = rocks;
type Db = rocks.RocksLevel;
type Column = rocks.ColumnHandle;

export interface RocksDbEngineOptions {
  /** Block cache bytes for the `main` keyspace. Default 64 MiB; at most 4 GiB - 1 (the binding takes a uint32). */
  readonly cacheSize?: number;
}

const DEFAULT_CACHE_SIZE = 64 * 1024 * 1024;
/** The location of an engine attached to another thread's database (see `attach`). */
const ATTACHED = '(attached)';
/** Archived aggregates are read rarely: a small cache is enough. */
const ARCHIVE_CACHE_SIZE = 8 * 1024 * 1024;
/** Entries fetched per native call while iterating. */
const NEXTV_SIZE = 1000;
/**
 * Point reads of up to this many keys are made on the calling thread. They are served from the
 * memtable, the block cache or a page read in microseconds, while a hand-over to libuv's thread pool
 * and back cost 31 µs at the median and 0.6–0.8 ms at p99, up to 11 ms (measured here: a lone append
 * spent more time waiting for its prefetch than for its fsync). Larger reads go to the pool.
 */
const SYNC_READ_KEYS = 16;
/** Keys per synchronous read of a larger `getMany`, between which the event loop gets a turn. */
const SYNC_SLICE_KEYS = 256;
const MAX_UINT32 = 2 ** 32 - 1;
const MAX_INT32 = 2 ** 31 - 1;

/**
 * Column family options. The binding turns ZSTD with a 16 KiB dictionary on for every level by
 * default (`compression: true`) and exposes no knob for the ZSTD level or for bottommost-level
 * compression (its `compaction: 'level'` preset even turns compression *off* for L0-L1). The one
 * lever left for the archive is a larger block: 64 KiB blocks instead of 4 KiB give ZSTD more
 * context (about 6% smaller SST files on event-shaped JSON here) at the cost of reading a larger
 * block per point lookup, which is fine for cold data.
 */
function openOptions(cacheSize: number): rocks.OpenOptions {
  return {
    createIfMissing: true,
    // Column options at the top level would only build an unused cache for the default CF template.
    cacheSize: 0,
    // Values holding user data are AES-GCM sealed and do not compress: compressing the WAL would only
    // cost CPU on the write path (the binding writes batches on the JS thread).
    walCompression: false,
    // infoLogLevel is left unset: the binding then installs a null logger, so no LOG files pile up in
    // the data dir (the CLI opens the store once per command).
    columns: {
      default: { compression: true, cacheSize },
      archive: {
        compression: true,
        cacheSize: Math.min(cacheSize, ARCHIVE_CACHE_SIZE),
        blockSize: 64 * 1024,
      },
    },
  };
}

/**
 * A durable engine on RocksDB. One process may open a data dir at a time; a second gets
 * EDBX_ERR_STORE_LOCKED.
 *
 * @example
 * const engine = new RocksDbEngine('/var/lib/eventdbx/data', { cacheSize: 128 << 20 });
 * await engine.open();
 * await engine.write([{ type: 'put', space: 'main', key, value }], { sync: true });
 * await engine.close();
 */
export class RocksDbEngine extends StorageEngine {
  readonly kind = 'rocksdb';
  readonly location: string;
  readonly #cacheSize: number;
  #db: Db | undefined;
  #columns: Record<Space, Column> | undefined;
  #thread: WriteThread | undefined;
  #inline: NativeBatchWriter | undefined;
  /** Called before the database closes: threads reading it through `shareHandle` let go. */
  readonly #sharedWith = new Set<() => Promise<void>>();
  /** Set on an engine attached to a database another thread opened (see `attach`). */
  #attachedTo: bigint | undefined;
  /** Ends this engine's hold on the owner-only umask its database's files are created under. */
  #releaseUmask: (() => void) | undefined;
  /** A failed read or write as a coded error; damage found is noted (see StorageEngine.damage). */
  readonly #fail = (e: unknown): EventDbxError => {
    const coded = ioError(e, this.location);
    this.noteDamage(coded);
    return coded;
  };

  constructor(location: string, options: RocksDbEngineOptions = {}) {
    super();
    if (typeof location !== 'string' || location.length === 0) {
      throw err('EDBX_ERR_INVALID_ARGUMENT', {
        name: 'data dir',
        value: location,
        reason: 'use a non-empty path',
      });
    }
    const cacheSize = options.cacheSize ?? DEFAULT_CACHE_SIZE;
    if (!Number.isInteger(cacheSize) || cacheSize < 0 || cacheSize > MAX_UINT32) {
      throw err('EDBX_ERR_INVALID_ARGUMENT', {
        name: 'cacheSize',
        value: cacheSize,
        reason: `use a whole number of bytes from 0 to ${MAX_UINT32}`,
      });
    }
    this.location = location;
    this.#cacheSize = cacheSize;
  }

  /**
   * A read-only engine on the database another thread of this process opened, from that engine's
   * `shareHandle()` (verification runs on worker threads this way). It never writes and its `close()`
   * leaves the database open: the owner must outlive it and closes the database. It reads
   * synchronously: a worker thread has nothing else to do meanwhile, and each asynchronous read would
   * cost two hand-overs to and from the thread pool (measured: verification workers sat idle 45% of the
   * time on them).
   */
  static attach(handle: bigint): RocksDbEngine {
    const engine = new RocksDbEngine(ATTACHED);
    engine.#attachedTo = handle;
    return engine;
  }

  override shareHandle(release: () => Promise<void>): bigint | undefined {
    const handle = this.#attachedTo ?? this.#db?.handle;
    if (handle !== undefined) this.#sharedWith.add(release);
    return handle;
  }

  /** Cheap estimates from RocksDB properties (they cover the `main` keyspace only). */
  override stats(): Record<string, number | string> {
    const db = this.#db;
    if (db === undefined || db.status !== 'open') return {};
    const num = (property: string): number => {
      const n = Number(db.getProperty(property));
      return Number.isFinite(n) ? n : 0;
    };
    return {
      'main.keys_estimate': num('rocksdb.estimate-num-keys'),
      'main.sst_bytes': num('rocksdb.total-sst-files-size'),
      'main.memtable_bytes': num('rocksdb.cur-size-all-mem-tables'),
      'main.block_cache_bytes': num('rocksdb.block-cache-usage'),
    };
  }

  protected async _open(): Promise<void> {
    const attached = this.#attachedTo;
    // A database that lost its CURRENT must not be opened: RocksDB would start a new one over it.
    // Checked before the database object exists: abstract-level opens one left unopened for a tick
    // on its own, with none of the options below.
    const damaged = attached === undefined ? await missingCurrent(this.location) : undefined;
    if (damaged) throw damaged;
    // Default both encodings to 'buffer': abstract-level would otherwise utf8-transcode keys and
    // values (0xff becomes U+FFFD) wherever an encoding is not passed per call. The binding takes a
    // shared handle where it takes a location (its typings know only the location); opening an open
    // database only answers its column handles.
    const db = new RocksLevel(attached === undefined ? this.location : (attached as unknown as string), {
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
    });
    // Held from before the first file is created until the database is closed (see private-umask.ts).
    const release = attached === undefined ? holdPrivateUmask() : undefined;
    try {
      await db.open(attached === undefined ? openOptions(this.#cacheSize) : { createIfMissing: false });
    } catch (e) {
      release?.();
      throw attached === undefined ? openError(e, this.location) : this.#fail(e);
    }
    const { default: main, archive } = db.columns;
    if (main === undefined || archive === undefined) {
      try {
        // Never close a shared database: its owner does.
        if (attached === undefined) await db.close();
      } finally {
        release?.();
      }
      throw err('EDBX_ERR_STORE_IO', { reason: `${this.location}: column families missing after open` });
    }
    this.#releaseUmask = release;
    this.#db = db;
    this.#columns = { main, archive };
  }

  protected async _close(): Promise<void> {
    if (this.#attachedTo !== undefined) {
      // Never close a database this engine does not own (the same native object): just let go of it.
      this.#db = undefined;
      this.#columns = undefined;
      return;
    }
    // Threads attached to the database stop reading it first (see shareHandle).
    const sharers = [...this.#sharedWith];
    this.#sharedWith.clear();
    await Promise.all(sharers.map((release) => release()));
    const db = this.#db;
    const thread = this.#thread;
    this.#db = undefined;
    this.#columns = undefined;
    this.#thread = undefined;
    this.#inline = undefined;
    try {
      // Writes in flight finish first; the worker must be gone before the database closes.
      await thread?.close();
      await db?.close();
    } catch (e) {
      throw this.#fail(e);
    } finally {
      this.#releaseUmask?.();
      this.#releaseUmask = undefined;
    }
  }

  protected async _get(space: Space, key: Buffer): Promise<Buffer | undefined> {
    const [value] = await this._getMany(space, [key]);
    return value;
  }

  /**
   * Never through the binding's asynchronous MultiGet: when a key's read fails (a damaged table), its
   * completion throws the error out of the native callback instead of passing it on, so the promise
   * never settles and the process gets an uncaught exception (found with a corrupt SST, DR QA #3). Its
   * synchronous MultiGet (the same read options) throws as it should: larger reads are made with it
   * a slice at a time, the event loop getting a turn between slices.
   */
  protected async _getMany(space: Space, keys: readonly Buffer[]): Promise<(Buffer | undefined)[]> {
    if (this.#attachedTo !== undefined || keys.length <= SYNC_READ_KEYS)
      return this._getManySync(space, keys);
    const values: (Buffer | undefined)[] = [];
    for (let at = 0; at < keys.length; at += SYNC_SLICE_KEYS) {
      if (at > 0) await new Promise((resolve) => setImmediate(resolve));
      values.push(...this._getManySync(space, keys.slice(at, at + SYNC_SLICE_KEYS)));
    }
    return values;
  }

  protected override _getManySync(space: Space, keys: readonly Buffer[]): (Buffer | undefined)[] {
    const { db, column } = this.#handles(space);
    // The native call dereferences the open database: never reach it while closing.
    if (db.status !== 'open') throw err('EDBX_ERR_STORE_NOT_OPEN');
    try {
      return checkValues(db._getManySync(keys, bufferOptions(column)));
    } catch (e) {
      throw this.#fail(e);
    }
  }

  protected async _write(ops: readonly WriteOp[], options: WriteOptions): Promise<void> {
    if (this.#attachedTo !== undefined) {
      throw err('EDBX_ERR_INTERNAL', { reason: 'an attached RocksDB engine is read-only' });
    }
    const { db, columns } = this.#handles('main');
    // Validate every keyspace before anything reaches the batch.
    for (const op of ops) this.#handles(op.space);
    if (options.inline && (this.#thread === undefined || this.#thread.idle)) {
      this.#inline ??= new NativeBatchWriter(db.handle);
      try {
        this.#inline.write(ops, columns, options.sync);
      } catch (e) {
        throw this.#fail(e);
      }
      return;
    }
    this.#thread ??= new WriteThread(db.handle, (reason) => this.#fail(new Error(reason)));
    await this.#thread.write(packOps(ops), options.sync);
  }

  protected _range(space: Space, options: RangeOptions): AsyncIterable<[Buffer, Buffer]> {
    const { db, column } = this.#handles(space);
    return iterate(
      db,
      column,
      normalizeRange(options),
      'entries',
      this.#attachedTo !== undefined,
      this.#fail,
    );
  }

  protected override _valueChunks(space: Space, options: RangeOptions): AsyncIterable<Buffer[]> {
    const { db, column } = this.#handles(space);
    return iterate(db, column, normalizeRange(options), 'values', this.#attachedTo !== undefined, this.#fail);
  }

  protected override _keyChunks(space: Space, options: RangeOptions): AsyncIterable<Buffer[]> {
    const { db, column } = this.#handles(space);
    return iterate(db, column, normalizeRange(options), 'keys', this.#attachedTo !== undefined, this.#fail);
  }

  /**
   * The native iterator is created here, synchronously (the binding creates RocksDB's iterator in its
   * constructor), and reads from the implicit snapshot RocksDB takes then.
   */
  protected override _pin(space: Space, range: PinRange): PinnedRead {
    if (this.#attachedTo !== undefined) {
      throw err('EDBX_ERR_NOT_SUPPORTED', { feature: 'pinned reads (backup)', engine: 'attached rocksdb' });
    }
    const { db, column } = this.#handles(space);
    const fail = this.#fail;
    let it: rocks.Iterator;
    try {
      it = db.iterator({ ...bufferOptions(column), ...range });
    } catch (e) {
      throw fail(e);
    }
    let closed: Promise<void> | undefined;
    const close = (): Promise<void> => (closed ??= it.close().catch((e: unknown) => Promise.reject(fail(e))));
    let read = false;
    return {
      async *chunks(signal?: AbortSignal): AsyncGenerator<Array<[Buffer, Buffer]>> {
        if (read || closed !== undefined)
          throw err('EDBX_ERR_INTERNAL', { reason: 'a pinned read is read once' });
        read = true;
        try {
          for (;;) {
            throwIfAborted(signal);
            let entries: [Buffer, Buffer][];
            try {
              entries = await it.nextv(NEXTV_SIZE);
            } catch (e) {
              throw fail(e);
            }
            if (entries.length === 0) return;
            yield entries;
          }
        } finally {
          await close();
        }
      },
      close,
    };
  }

  #handles(space: Space): { db: Db; column: Column; columns: Record<Space, Column> } {
    if (!SPACES.includes(space)) {
      throw err('EDBX_ERR_INTERNAL', { reason: `unknown keyspace ${JSON.stringify(space)}` });
    }
    const db = this.#db;
    const columns = this.#columns;
    if (db === undefined || columns === undefined) throw err('EDBX_ERR_STORE_NOT_OPEN');
    return { db, column: columns[space], columns };
  }
}

interface NativeRange {
  readonly gte: Buffer | undefined;
  readonly lt: Buffer | undefined;
  readonly reverse: boolean;
  /** -1: unlimited. */
  readonly limit: number;
  readonly empty: boolean;
  readonly signal: AbortSignal | undefined;
}

/**
 * Reduce the four bounds to one inclusive lower and one exclusive upper bound (in byte order the
 * successor of k is k + 0x00). When both gt and gte (or lt and lte) are given, the stricter applies.
 */
function normalizeRange(options: RangeOptions): NativeRange {
  for (const bound of [options.gt, options.gte, options.lt, options.lte]) {
    if (bound !== undefined && !Buffer.isBuffer(bound)) {
      throw err('EDBX_ERR_INTERNAL', { reason: 'engine range: bounds must be Buffers' });
    }
  }
  const { limit = Infinity } = options;
  if (limit !== Infinity && !(Number.isInteger(limit) && limit >= 0)) {
    throw err('EDBX_ERR_INTERNAL', {
      reason: `engine range: limit must be a whole number >= 0, got ${limit}`,
    });
  }
  const max = (a: Buffer | undefined, b: Buffer | undefined): Buffer | undefined =>
    a === undefined ? b : b === undefined || Buffer.compare(a, b) >= 0 ? a : b;
  const min = (a: Buffer | undefined, b: Buffer | undefined): Buffer | undefined =>
    a === undefined ? b : b === undefined || Buffer.compare(a, b) <= 0 ? a : b;
  const gte = max(options.gte, options.gt && successor(options.gt));
  const lt = min(options.lt, options.lte && successor(options.lte));
  const empty =
    limit === 0 ||
    (lt !== undefined && lt.length === 0) ||
    (gte !== undefined && lt !== undefined && Buffer.compare(gte, lt) >= 0);
  const reverse = options.reverse === true;
  return { gte, lt, reverse, limit: limit > MAX_INT32 ? -1 : limit, empty, signal: options.signal };
}

const successor = (key: Buffer): Buffer => Buffer.concat([key, Buffer.alloc(1)]);

/** What an iteration hands over: entries, or chunks of values only or keys only. */
type IterateMode = 'entries' | 'values' | 'keys';

/**
 * The native iterator is created on the first `next()` and reads from an implicit RocksDB snapshot
 * taken then, so concurrent writes never disturb an iteration in progress.
 */
function iterate(
  db: Db,
  column: Column,
  range: NativeRange,
  mode: 'entries',
  sync: boolean,
  fail: (e: unknown) => EventDbxError,
): AsyncGenerator<[Buffer, Buffer]>;
function iterate(
  db: Db,
  column: Column,
  range: NativeRange,
  mode: 'values' | 'keys',
  sync: boolean,
  fail: (e: unknown) => EventDbxError,
): AsyncGenerator<Buffer[]>;
async function* iterate(
  db: Db,
  column: Column,
  range: NativeRange,
  mode: IterateMode,
  sync: boolean,
  fail: (e: unknown) => EventDbxError,
): AsyncGenerator<[Buffer, Buffer] | Buffer[]> {
  if (range.empty) return;
  let it: rocks.Iterator;
  try {
    it = db.iterator({
      ...bufferOptions(column),
      keys: mode !== 'values',
      values: mode !== 'keys',
      ...(range.gte === undefined ? {} : { gte: range.gte }),
      ...(range.lt === undefined ? {} : { lt: range.lt }),
      reverse: range.reverse,
      limit: range.limit,
    });
  } catch (e) {
    throw fail(e);
  }
  if (sync) return yield* readSync(it as unknown as SyncIterator, mode, range.signal, fail);
  // Once a caller comes back for a second chunk it is scanning: from then on the next chunk is read
  // (on the thread pool) while the caller works through the current one.
  let next: Promise<[Buffer, Buffer][]> | undefined = it.nextv(NEXTV_SIZE);
  try {
    for (let chunk = 1; next; chunk++) {
      let entries: [Buffer, Buffer][];
      try {
        entries = await next;
      } catch (e) {
        throw fail(e);
      } finally {
        next = undefined;
      }
      if (entries.length === 0) return;
      throwIfAborted(range.signal);
      if (chunk > 1) next = it.nextv(NEXTV_SIZE);
      if (mode === 'entries') yield* entries;
      else yield entries.map((e) => e[mode === 'keys' ? 0 : 1]);
      next ??= it.nextv(NEXTV_SIZE);
    }
  } finally {
    // A read still in flight must settle before the iterator closes.
    await next?.catch(() => undefined);
    await it.close();
  }
}

/** The binding's synchronous read: rows alternate key, value. */
interface SyncIterator {
  _nextvSync(size: number, options: object): { rows: Buffer[]; finished: boolean };
  close(): Promise<void>;
}

async function* readSync(
  it: SyncIterator,
  mode: IterateMode,
  signal: AbortSignal | undefined,
  fail: (e: unknown) => EventDbxError,
): AsyncGenerator<[Buffer, Buffer] | Buffer[]> {
  try {
    for (;;) {
      throwIfAborted(signal);
      let read: { rows: Buffer[]; finished: boolean };
      try {
        read = it._nextvSync(NEXTV_SIZE, {});
      } catch (e) {
        throw fail(e);
      }
      const { rows } = read;
      if (mode === 'entries') {
        for (let i = 0; i < rows.length; i += 2) yield [rows[i] as Buffer, rows[i + 1] as Buffer];
      } else if (rows.length > 0) {
        const column = new Array<Buffer>(rows.length / 2);
        const at = mode === 'keys' ? 0 : 1;
        for (let i = at; i < rows.length; i += 2) column[(i - at) / 2] = rows[i] as Buffer;
        yield column;
      }
      if (read.finished || rows.length === 0) return;
    }
  } finally {
    await it.close();
  }
}

const bufferOptions = (column: Column): rocks.BufferOptions => ({
  column,
  keyEncoding: 'buffer',
  valueEncoding: 'buffer',
});

/** The binding answers null for a read it aborted (deadline): never report that as "missing". */
function checkValues(values: readonly (Buffer | undefined | null)[]): (Buffer | undefined)[] {
  return values.map((v) => {
    if (v === null) throw err('EDBX_ERR_STORE_IO', { reason: 'read aborted by RocksDB' });
    return v;
  });
}

interface NativeError {
  readonly code?: unknown;
  readonly message?: unknown;
  readonly cause?: unknown;
}

/** The error and its causes, outermost first (abstract-level wraps open failures). */
function causes(e: unknown): NativeError[] {
  const chain: NativeError[] = [];
  let cur: unknown = e;
  while (typeof cur === 'object' && cur !== null && chain.length < 8) {
    chain.push(cur as NativeError);
    cur = (cur as NativeError).cause;
  }
  return chain;
}

/** One clean line from the innermost cause: no stack, no multi-line native dumps. */
function reasonOf(e: unknown): string {
  const inner = causes(e).at(-1);
  const text = typeof inner?.message === 'string' ? inner.message : String(e);
  return text.split('\n')[0]!.trim();
}

const LOCK_MESSAGE = /IO error: (lock |While lock file|LockFile )/;
/**
 * RocksDB's texts for the errno of a file it could not create (`…/LOCK: Read-only file system`): the
 * binding has no read-only open, so even a read needs a data dir it can write in.
 */
const NOT_WRITABLE: ReadonlyArray<readonly [RegExp, string]> = [
  [/IO error: .*: Read-only file system$/, 'EROFS'],
  [/IO error: .*: Permission denied$/, 'EACCES'],
];
/** The file a permission error names (`While open a file for random read: /d/000008.sst: Permission denied`). */
const DENIED_FILE = /IO error: [^:]*: (.+): Permission denied$/;

/**
 * The coded error for a failed open of the database at `path`: another process holds it, its files are
 * damaged (EDBX_ERR_STORE_DAMAGED), one of them is not this user's to open (EDBX_ERR_DATA_FILE_ACCESS),
 * the data dir is not writable (a read-only mount, permissions), or a plain I/O error.
 *
 * @example
 * openError(new Error('IO error: while open a file for lock: /d/LOCK: Read-only file system'), '/d');
 * // EDBX_ERR_DATA_DIR_NOT_WRITABLE, reason EROFS
 */
export function openError(e: unknown, path: string): EventDbxError {
  if (e instanceof EventDbxError) return e;
  const chain = causes(e);
  const locked = chain.some(
    (c) => c.code === 'LEVEL_LOCKED' || (typeof c.message === 'string' && LOCK_MESSAGE.test(c.message)),
  );
  if (locked) return err('EDBX_ERR_STORE_LOCKED', { path }, e);
  const damaged = damageOf(chain, path, false);
  if (damaged) return damaged;
  const text = reasonOf(e);
  const denied = NOT_WRITABLE.find(([pattern]) => pattern.test(text));
  // A file in the data dir this user may not open (a restore copied as root), named with its owner.
  const file = denied?.[1] === 'EACCES' ? DENIED_FILE.exec(text)?.[1] : undefined;
  const access = file !== undefined ? fileAccessError(file, path, 'open', 'EACCES') : undefined;
  if (access && !file!.endsWith('/LOCK')) return access;
  if (denied) return err('EDBX_ERR_DATA_DIR_NOT_WRITABLE', { path, reason: denied[1] }, e);
  const out = OUT_OF_DESCRIPTORS.exec(text);
  if (out) return outOfDescriptors(out[1] ? 'ENFILE' : 'EMFILE', `cannot open ${path}: ${text}`, e);
  return err('EDBX_ERR_STORE_IO', { reason: `cannot open ${path}: ${text}` }, e);
}

/** RocksDB's texts for EMFILE and ENFILE (strerror's): `…/000012.sst: Too many open files`. */
const OUT_OF_DESCRIPTORS = /: Too many open files( in system)?$/;

/**
 * What a write or read that ran out of descriptors adds to the engine's text: the store refuses writes
 * from then on (a write's outcome is unknown), and what to raise before the restart.
 */
function descriptorsAdvice(text: string): string {
  if (!OUT_OF_DESCRIPTORS.test(text)) return '';
  const limit = notedOpenFilesLimit();
  return ` (the process used up its open-files limit${limit === undefined ? '' : `, ${limit}`}: raise it, see README "Troubleshooting")`;
}

/** The data dir a RocksDB text's file is in (an attached engine knows no location of its own). */
const DIR_IN_TEXT = /(\/[^\s:]*)\/[^\s/:]+\.(?:sst|log|blob)\b/;

/**
 * A failed read or write of the open database at `location` as a coded error: damaged files are
 * EDBX_ERR_STORE_DAMAGED, anything else EDBX_ERR_STORE_IO with the engine's text (and, for a process
 * out of descriptors, what to raise).
 *
 * @example
 * ioError(new Error('IO error: While open a file for appending: /d/000018.log: Too many open files'), '/d');
 * // EDBX_ERR_STORE_IO: storage error: IO error: … Too many open files (the process used up its open-files limit: …)
 */
export function ioError(e: unknown, location: string): EventDbxError {
  if (e instanceof EventDbxError) return e;
  const chain = causes(e);
  const outer = chain[0];
  if (outer?.code === 'LEVEL_DATABASE_NOT_OPEN' || outer?.code === 'LEVEL_ITERATOR_NOT_OPEN') {
    return err('EDBX_ERR_STORE_NOT_OPEN', {}, e);
  }
  const text = typeof chain.at(-1)?.message === 'string' ? String(chain.at(-1)!.message) : '';
  const where = location === ATTACHED ? (DIR_IN_TEXT.exec(text)?.[1] ?? 'of this store') : location;
  const reason = reasonOf(e);
  return (
    damageOf(chain, where, true) ??
    err('EDBX_ERR_STORE_IO', { reason: reason + descriptorsAdvice(reason) }, e)
  );
}
