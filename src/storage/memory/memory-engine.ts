/**
 * An in-memory storage engine for fast unit tests: each keyspace is a sorted array of entries in
 * byte order (Buffer.compare) searched by bisection. Nothing is persisted: every `open()` starts
 * empty and `close()` discards the data.
 */
import { err, throwIfAborted } from '../../core/errors.js';
import { SPACES, StorageEngine } from '../engine.js';
import type { PinRange, PinnedRead, RangeOptions, Space, WriteOp, WriteOptions } from '../engine.js';

interface Entry {
  readonly key: Buffer;
  readonly value: Buffer;
}

/** One ordered keyspace. Entries are immutable, so a slice of the array is a consistent snapshot. */
class SortedKeyspace {
  #entries: Entry[] = [];

  get size(): number {
    return this.#entries.length;
  }

  get(key: Buffer): Buffer | undefined {
    const i = this.#bound(key, false);
    const entry = this.#entries[i];
    return entry !== undefined && entry.key.equals(key) ? entry.value : undefined;
  }

  put(key: Buffer, value: Buffer): void {
    const i = this.#bound(key, false);
    const entry: Entry = { key, value };
    const existing = this.#entries[i];
    if (existing !== undefined && existing.key.equals(key)) this.#entries[i] = entry;
    else this.#entries.splice(i, 0, entry);
  }

  del(key: Buffer): void {
    const i = this.#bound(key, false);
    const existing = this.#entries[i];
    if (existing !== undefined && existing.key.equals(key)) this.#entries.splice(i, 1);
  }

  /** The entries within the bounds, in key order, already cut to `limit` from the iteration end. */
  slice(options: RangeOptions): Entry[] {
    let lo = 0;
    let hi = this.#entries.length;
    if (options.gte !== undefined) lo = Math.max(lo, this.#bound(options.gte, false));
    if (options.gt !== undefined) lo = Math.max(lo, this.#bound(options.gt, true));
    if (options.lt !== undefined) hi = Math.min(hi, this.#bound(options.lt, false));
    if (options.lte !== undefined) hi = Math.min(hi, this.#bound(options.lte, true));
    if (lo >= hi) return [];
    const limit = options.limit ?? Infinity;
    if (hi - lo > limit) {
      if (options.reverse === true) lo = hi - limit;
      else hi = lo + limit;
    }
    return this.#entries.slice(lo, hi);
  }

  /** Index of the first entry whose key is >= `key` (or > `key` when `after`). */
  #bound(key: Buffer, after: boolean): number {
    let lo = 0;
    let hi = this.#entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = Buffer.compare(this.#entries[mid]!.key, key);
      if (c < 0 || (after && c === 0)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

const copy = (b: Buffer): Buffer => Buffer.from(b);

/**
 * The in-memory engine. Values go in and come out as copies, so callers can never alias stored data.
 *
 * @example
 * const engine = new MemoryEngine();
 * await engine.open();
 * await engine.write([{ type: 'put', space: 'main', key: Buffer.from('k'), value: Buffer.from('v') }], { sync: false });
 * await engine.get('main', Buffer.from('k')); // <Buffer 76>
 */
export class MemoryEngine extends StorageEngine {
  readonly kind = 'memory';
  #spaces = new Map<Space, SortedKeyspace>();
  #fault: Error | undefined;

  /**
   * Test hook: the next `write` rejects with `error` and applies nothing, as if the disk failed.
   * Used to check that a failed write leaves the store unchanged.
   */
  faultNextWrite(error: Error): void {
    this.#fault = error;
  }

  override stats(): Record<string, number | string> {
    const size = (space: Space): number => this.#spaces.get(space)?.size ?? 0;
    return { 'keys.main': size('main'), 'keys.archive': size('archive') };
  }

  protected async _open(): Promise<void> {
    this.#spaces = new Map(SPACES.map((space) => [space, new SortedKeyspace()]));
  }

  protected async _close(): Promise<void> {
    this.#spaces = new Map();
  }

  protected async _get(space: Space, key: Buffer): Promise<Buffer | undefined> {
    return this._getManySync(space, [key])[0];
  }

  protected async _getMany(space: Space, keys: readonly Buffer[]): Promise<(Buffer | undefined)[]> {
    return this._getManySync(space, keys);
  }

  protected override _getManySync(space: Space, keys: readonly Buffer[]): (Buffer | undefined)[] {
    const store = this.#space(space);
    return keys.map((key) => {
      const value = store.get(key);
      return value === undefined ? undefined : copy(value);
    });
  }

  protected async _write(ops: readonly WriteOp[], _options: WriteOptions): Promise<void> {
    // Validate everything first so a bad op cannot leave the batch half-applied.
    const targets = ops.map((op) => this.#space(op.space));
    const fault = this.#fault;
    if (fault !== undefined) {
      this.#fault = undefined;
      throw fault;
    }
    ops.forEach((op, i) => {
      const store = targets[i]!;
      if (op.type === 'put') store.put(copy(op.key), copy(op.value));
      else store.del(op.key);
    });
  }

  protected _range(space: Space, options: RangeOptions): AsyncIterable<[Buffer, Buffer]> {
    const store = this.#space(space);
    checkRange(options);
    return iterate(store, options);
  }

  /** Entries are immutable and the slice is taken now: later writes change the array, not the slice. */
  protected override _pin(space: Space, range: PinRange): PinnedRead {
    let entries: Entry[] | undefined = this.#space(space).slice(range);
    return {
      async *chunks(signal?: AbortSignal): AsyncGenerator<Array<[Buffer, Buffer]>> {
        const pinned = entries;
        if (pinned === undefined) throw err('EDBX_ERR_INTERNAL', { reason: 'a pinned read is read once' });
        entries = undefined;
        for (let i = 0; i < pinned.length; i += 1000) {
          throwIfAborted(signal);
          yield pinned.slice(i, i + 1000).map(({ key, value }) => [copy(key), copy(value)]);
        }
      },
      close: async () => {
        entries = undefined;
      },
    };
  }

  #space(space: Space): SortedKeyspace {
    const store = this.#spaces.get(space);
    if (store === undefined) {
      if (!SPACES.includes(space)) {
        throw err('EDBX_ERR_INTERNAL', { reason: `unknown keyspace ${JSON.stringify(space)}` });
      }
      throw err('EDBX_ERR_STORE_NOT_OPEN');
    }
    return store;
  }
}

/** The snapshot is taken when iteration starts, so writes during iteration are not seen. */
async function* iterate(store: SortedKeyspace, options: RangeOptions): AsyncGenerator<[Buffer, Buffer]> {
  const entries = store.slice(options);
  if (options.reverse === true) entries.reverse();
  // Checked as often as the RocksDB engine does, once per chunk of 1000.
  for (const [i, { key, value }] of entries.entries()) {
    if (i % 1000 === 0) throwIfAborted(options.signal);
    yield [copy(key), copy(value)];
  }
}

function checkRange(options: RangeOptions): void {
  for (const bound of [options.gt, options.gte, options.lt, options.lte]) {
    if (bound !== undefined && !Buffer.isBuffer(bound)) {
      throw err('EDBX_ERR_INTERNAL', { reason: 'engine range: bounds must be Buffers' });
    }
  }
  const { limit } = options;
  if (limit !== undefined && limit !== Infinity && !(Number.isInteger(limit) && limit >= 0)) {
    throw err('EDBX_ERR_INTERNAL', {
      reason: `engine range: limit must be a whole number >= 0, got ${limit}`,
    });
  }
}
