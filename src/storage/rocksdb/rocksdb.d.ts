/**
 * Minimal typings for the parts of `@nxtedition/rocksdb` (v12, CommonJS, ships no types) that
 * EventDBX uses. Option names mirror binding.cc (`InitOptions`, `db_open`, `iterator_init`).
 */
declare module '@nxtedition/rocksdb' {
  namespace rocks {
    /** An opaque column family handle (a N-API external). */
    type ColumnHandle = object & { readonly __rocksColumn?: never };

    /** Per column family options (binding.cc InitOptions). */
    interface ColumnOptions {
      /** ZSTD with a 16 KiB dictionary when true (the default). */
      compression?: boolean;
      compaction?: 'level' | 'universal';
      memtableMemoryBudget?: number;
      /** Block cache bytes for this column family (uint32; 0 = no block cache). Default 8 MiB. */
      cacheSize?: number;
      cacheIndexAndFilterBlocks?: boolean;
      blockSize?: number;
      blockRestartInterval?: number;
      optimize?: 'point-lookup' | 'range-lookup';
      filterPolicy?: string;
      prefixExtractor?: string;
      comparator?: string;
      mergeOperator?: string;
      optimizeFiltersForMemory?: boolean;
    }

    interface OpenOptions extends ColumnOptions {
      createIfMissing?: boolean;
      errorIfExists?: boolean;
      parallelism?: number;
      walCompression?: boolean;
      pipelinedWrite?: boolean;
      infoLogLevel?: 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'header';
      columns?: Record<string, ColumnOptions>;
    }

    interface BufferOptions {
      column?: ColumnHandle;
      keyEncoding?: 'buffer';
      valueEncoding?: 'buffer';
      fillCache?: boolean;
    }

    interface IteratorOptions extends BufferOptions {
      gt?: Buffer;
      gte?: Buffer;
      lt?: Buffer;
      lte?: Buffer;
      reverse?: boolean;
      /** -1 (or omitted) = no limit. */
      limit?: number;
      /** false: entries carry `undefined` keys (no key Buffers are made). */
      keys?: boolean;
      /** false: entries carry `undefined` values (no value Buffers are made). */
      values?: boolean;
    }

    type BatchOp =
      | { type: 'put'; key: Buffer; value: Buffer; column?: ColumnHandle }
      | { type: 'del'; key: Buffer; column?: ColumnHandle };

    interface Iterator {
      nextv(size: number): Promise<[Buffer, Buffer][]>;
      close(): Promise<void>;
    }

    class RocksLevel {
      constructor(location: string, options?: { keyEncoding?: 'buffer'; valueEncoding?: 'buffer' });
      readonly status: 'opening' | 'open' | 'closing' | 'closed';
      readonly location: string;
      readonly columns: Record<string, ColumnHandle>;
      /** Native pointer of the open database; the binding's `db_init(handle)` (in any thread) shares it. */
      readonly handle: bigint;
      open(options?: OpenOptions): Promise<void>;
      close(): Promise<void>;
      getMany(keys: readonly Buffer[], options?: BufferOptions): Promise<(Buffer | undefined)[]>;
      /** Undocumented synchronous MultiGet; missing keys are undefined. Expects the db to be open. */
      _getManySync(keys: readonly Buffer[], options?: BufferOptions): (Buffer | undefined | null)[];
      /** `sync: true` fsyncs the WAL before returning (unlike `put`, which ignores it). */
      batch(
        ops: readonly BatchOp[],
        options?: { sync?: boolean; keyEncoding?: 'buffer'; valueEncoding?: 'buffer' },
      ): Promise<void>;
      iterator(options?: IteratorOptions): Iterator;
      /** Properties of the default column family only, e.g. `rocksdb.estimate-num-keys`. */
      getProperty(property: string): string;
    }
  }
  export = rocks;
}
