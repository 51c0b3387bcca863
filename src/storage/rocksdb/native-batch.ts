/**
 * Writes through one reusable native `WriteBatch`. The binding's `db.batch()` makes a new native
 * WriteBatch per call and frees it only when V8 finalises its handle; measured here, memory then grows
 * with every byte written (900k puts of 400 bytes: 683 MB RSS, unchanged by forced GCs, with 6 MB of
 * memtables and an empty block cache), while clearing and refilling one batch stays at 216 MB and is a
 * little faster. This uses the binding's own native functions (`binding.js`), the same calls its
 * `ChainedBatch` makes: `batch_init`, `batch_clear`, `batch_put`, `batch_del`, `batch_write`.
 */
import { createRequire } from 'node:module';
import type rocks from '@nxtedition/rocksdb';
import type { Space, WriteOp } from '../engine.js';

const require = createRequire(import.meta.url);

/** Path of the binding's native module loader. */
const BINDING_PATH = require.resolve('@nxtedition/rocksdb/binding.js');

/** A batch larger than this is not kept for reuse (its memory would stay reserved). */
const REUSE_LIMIT = 8 * 1024 * 1024;

type External = object;

interface NativeBinding {
  db_init(handle: bigint): External;
  db_open(db: External, options: object, callback: () => void): Partial<Record<string, rocks.ColumnHandle>>;
  batch_init(): External;
  batch_clear(batch: External): void;
  batch_put(batch: External, key: Buffer, value: Buffer, options: { column: rocks.ColumnHandle }): void;
  batch_del(batch: External, key: Buffer, options: { column: rocks.ColumnHandle }): void;
  batch_write(db: External, batch: External, options: { sync: boolean }): void;
}

/**
 * Synchronous batch writes on the calling thread, to the database behind `handle` (`db.handle`).
 *
 * @example
 * const writer = new NativeBatchWriter(db.handle);
 * writer.write([{ type: 'put', space: 'main', key, value }], { main, archive }, true);
 */
export class NativeBatchWriter {
  readonly #binding = require(BINDING_PATH) as NativeBinding;
  readonly #db: External;
  #batch: External;

  constructor(handle: bigint) {
    this.#db = this.#binding.db_init(handle);
    this.#batch = this.#binding.batch_init();
  }

  /**
   * The column handle of each keyspace. The database is open (another thread opened it): the
   * binding's `db_open` then answers its column handles at once, opening nothing.
   */
  columns(): Record<Space, rocks.ColumnHandle> {
    const { default: main, archive } = this.#binding.db_open(this.#db, {}, () => {});
    if (main === undefined || archive === undefined) throw new Error('column families missing');
    return { main, archive };
  }

  /** Applies every op atomically (fsync'd with `sync`) to its keyspace's column; throws the binding's error. */
  write(ops: readonly WriteOp[], columns: Readonly<Record<Space, rocks.ColumnHandle>>, sync: boolean): void {
    const b = this.#binding;
    const batch = this.#batch;
    b.batch_clear(batch);
    let bytes = 0;
    for (const op of ops) {
      const column = columns[op.space];
      if (op.type === 'put') {
        b.batch_put(batch, op.key, op.value, { column });
        bytes += op.key.length + op.value.length;
      } else {
        b.batch_del(batch, op.key, { column });
        bytes += op.key.length;
      }
    }
    try {
      b.batch_write(this.#db, batch, { sync });
    } finally {
      b.batch_clear(batch);
      if (bytes > REUSE_LIMIT) this.#batch = b.batch_init();
    }
  }
}
