/**
 * The storage engine interface: an ordered byte key-value store with two keyspaces and atomic,
 * optionally durable batches. The event store (src/store) is written against this interface only.
 *
 * Template methods: the public method checks the engine is open and the arguments are well formed,
 * then calls the engine's `_method`. Engines implement the `_` methods only.
 */
import { type EventDbxError, err, throwIfAborted } from '../core/errors.js';

/** `main` holds live data; `archive` holds archived aggregates (RocksDB: a separate, more compressed column family). */
export type Space = 'main' | 'archive';
export const SPACES: readonly Space[] = ['main', 'archive'];

export type WriteOp =
  | { readonly type: 'put'; readonly space: Space; readonly key: Buffer; readonly value: Buffer }
  | { readonly type: 'del'; readonly space: Space; readonly key: Buffer };

export interface RangeOptions {
  readonly gte?: Buffer;
  readonly gt?: Buffer;
  readonly lte?: Buffer;
  readonly lt?: Buffer;
  readonly reverse?: boolean;
  readonly limit?: number;
  /**
   * Checked before each chunk is read: once aborted, the scan ends with the signal's coded reason
   * (`throwIfAborted`). Long reads pass their request's signal so that a client that went away stops them.
   */
  readonly signal?: AbortSignal | undefined;
}

export interface WriteOptions {
  /** true: the batch is on stable storage (fsync'd WAL) before the promise resolves. */
  readonly sync: boolean;
  /**
   * A hint that the caller has nothing to do meanwhile: an engine that writes on a thread of its own
   * may write on the calling thread instead, saving the two thread hand-overs (when no earlier write
   * is still in flight, so that order is kept). Engines may ignore it.
   */
  readonly inline?: boolean;
}

/**
 * One keyspace's entries as of the moment `pin` returned, read later: what a backup copies. Writes made
 * after the pin are never seen. Read it once; `close` releases the snapshot (idempotent), and reading
 * to the end or stopping early does so too.
 */
export interface PinnedRead {
  /** Entries in key order, a chunk at a time; `signal` stops the read between chunks. */
  chunks(signal?: AbortSignal): AsyncIterable<Array<[Buffer, Buffer]>>;
  close(): Promise<void>;
}

/** Bounds of a pinned read. */
export type PinRange = Pick<RangeOptions, 'gte' | 'lt'>;

export type EngineStatus = 'new' | 'opening' | 'open' | 'closing' | 'closed';

export abstract class StorageEngine {
  abstract readonly kind: string;
  #status: EngineStatus = 'new';
  #damage: EventDbxError | undefined;
  readonly #damageListeners = new Set<(e: EventDbxError) => void>();

  get status(): EngineStatus {
    return this.#status;
  }

  /**
   * The first damage a read of this engine's data met (EDBX_ERR_STORE_DAMAGED: a damaged table), or
   * undefined. A store whose files are damaged may open and serve most reads: this is how a server
   * learns that it must say so (/health, its log) instead of answering only the request that met it.
   */
  get damage(): EventDbxError | undefined {
    return this.#damage;
  }

  /** Told once, of the first damage met (at once when some was met already); returns the unsubscribe. */
  onDamage(listener: (e: EventDbxError) => void): () => void {
    if (this.#damage) listener(this.#damage);
    else this.#damageListeners.add(listener);
    return () => this.#damageListeners.delete(listener);
  }

  /**
   * Record damage met reading this engine's data: by the engine itself, or by a thread attached to its
   * database (a verification worker), whose error comes back here. Only the first is kept and told.
   */
  noteDamage(e: EventDbxError): void {
    if (this.#damage !== undefined || e.code !== 'EDBX_ERR_STORE_DAMAGED') return;
    this.#damage = e;
    for (const listener of this.#damageListeners) listener(e);
    this.#damageListeners.clear();
  }

  async open(): Promise<void> {
    if (this.#status === 'open') return;
    this.#status = 'opening';
    try {
      await this._open();
      this.#status = 'open';
    } catch (e) {
      this.#status = 'closed';
      throw e;
    }
  }

  async close(): Promise<void> {
    if (this.#status !== 'open') return;
    this.#status = 'closing';
    try {
      await this._close();
    } finally {
      this.#status = 'closed';
    }
  }

  get(space: Space, key: Buffer): Promise<Buffer | undefined> {
    this.#check();
    checkKey(key);
    return this._get(space, key);
  }

  getMany(space: Space, keys: readonly Buffer[]): Promise<(Buffer | undefined)[]> {
    this.#check();
    keys.forEach(checkKey);
    if (keys.length === 0) return Promise.resolve([]);
    return this._getMany(space, keys);
  }

  /** Atomic: all operations are applied, or none. */
  write(ops: readonly WriteOp[], options: WriteOptions): Promise<void> {
    this.#check();
    for (const op of ops) {
      checkKey(op.key);
      if (op.type === 'put' && !Buffer.isBuffer(op.value)) {
        throw err('EDBX_ERR_INTERNAL', { reason: 'engine write: value must be a Buffer' });
      }
    }
    if (ops.length === 0) return Promise.resolve();
    return this._write(ops, options);
  }

  /**
   * Synchronous `getMany`, for hot paths that cannot await (e.g. Merkle proof generation).
   * Engines without synchronous reads throw EDBX_ERR_NOT_SUPPORTED.
   *
   * @example
   * const [head] = engine.getManySync('main', [key]);
   */
  getManySync(space: Space, keys: readonly Buffer[]): (Buffer | undefined)[] {
    this.#check();
    keys.forEach(checkKey);
    if (keys.length === 0) return [];
    return this._getManySync(space, keys);
  }

  /** Entries in key order (or reverse), within the bounds. */
  range(space: Space, options: RangeOptions = {}): AsyncIterable<[Buffer, Buffer]> {
    this.#check();
    throwIfAborted(options.signal);
    return this._range(space, options);
  }

  /**
   * Values only, in key order, a chunk at a time: much cheaper than `range` for long scans that do not
   * need the keys (the RocksDB binding pays for every Buffer it hands over).
   */
  valueChunks(space: Space, options: RangeOptions = {}): AsyncIterable<Buffer[]> {
    this.#check();
    throwIfAborted(options.signal);
    return this._valueChunks(space, options);
  }

  /**
   * Keys only, in key order, a chunk at a time: for scans that count or skip entries without opening
   * them (RocksDB then makes no value Buffers).
   */
  keyChunks(space: Space, options: RangeOptions = {}): AsyncIterable<Buffer[]> {
    this.#check();
    throwIfAborted(options.signal);
    return this._keyChunks(space, options);
  }

  /**
   * Pin a keyspace's entries now (those within `range`, else all), to read them later (see
   * PinnedRead). The pin is taken before this
   * returns, synchronously: pins taken one after the other with no write landing between them (the
   * store pins inside an exclusive writer job) are one consistent point in time. Engines that cannot
   * pin throw EDBX_ERR_NOT_SUPPORTED.
   *
   * @example
   * const [main, archive] = SPACES.map((space) => engine.pin(space));
   * for await (const chunk of main.chunks()) for (const [key, value] of chunk) copy(key, value);
   */
  pin(space: Space, range: PinRange = {}): PinnedRead {
    this.#check();
    return this._pin(space, range);
  }

  /**
   * A token another thread of this process can attach to, reading the same open database (RocksDB's
   * native handle); undefined when the engine cannot be shared (the in-memory engine). Before the
   * database closes, the engine calls `release` and waits for it: whoever attached must have let go
   * of the database when it resolves.
   */
  shareHandle(_release: () => Promise<void>): bigint | undefined {
    return undefined;
  }

  /** Approximate statistics for `status`/benchmarks; engines may return an empty object. */
  stats(): Record<string, number | string> {
    return {};
  }

  protected abstract _open(): Promise<void>;
  protected abstract _close(): Promise<void>;
  protected abstract _get(space: Space, key: Buffer): Promise<Buffer | undefined>;
  protected abstract _getMany(space: Space, keys: readonly Buffer[]): Promise<(Buffer | undefined)[]>;
  protected abstract _write(ops: readonly WriteOp[], options: WriteOptions): Promise<void>;
  protected abstract _range(space: Space, options: RangeOptions): AsyncIterable<[Buffer, Buffer]>;

  /** Engines may override with something cheaper than chunking `range`. */
  protected async *_valueChunks(space: Space, options: RangeOptions): AsyncIterable<Buffer[]> {
    let chunk: Buffer[] = [];
    for await (const [, value] of this._range(space, options)) {
      chunk.push(value);
      if (chunk.length >= 1000) {
        yield chunk;
        chunk = [];
      }
    }
    if (chunk.length > 0) yield chunk;
  }

  /** Engines may override with something cheaper than chunking `range`. */
  protected async *_keyChunks(space: Space, options: RangeOptions): AsyncIterable<Buffer[]> {
    let chunk: Buffer[] = [];
    for await (const [key] of this._range(space, options)) {
      chunk.push(key);
      if (chunk.length >= 1000) {
        yield chunk;
        chunk = [];
      }
    }
    if (chunk.length > 0) yield chunk;
  }

  /** Override to support `pin`. */
  protected _pin(_space: Space, _range: PinRange): PinnedRead {
    throw err('EDBX_ERR_NOT_SUPPORTED', { feature: 'pinned reads (backup)', engine: this.kind });
  }

  /** Override to support `getManySync`. */
  protected _getManySync(_space: Space, _keys: readonly Buffer[]): (Buffer | undefined)[] {
    throw err('EDBX_ERR_NOT_SUPPORTED', { feature: 'synchronous reads', engine: this.kind });
  }

  #check(): void {
    if (this.#status !== 'open') throw err('EDBX_ERR_STORE_NOT_OPEN');
  }
}

function checkKey(key: Buffer): void {
  if (!Buffer.isBuffer(key) || key.length === 0) {
    throw err('EDBX_ERR_INTERNAL', { reason: 'engine key must be a non-empty Buffer' });
  }
}

/** The smallest key strictly greater than every key starting with `prefix`. */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.concat([prefix, Buffer.from([0xff])]);
}
