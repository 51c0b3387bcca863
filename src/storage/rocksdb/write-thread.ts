/**
 * The RocksDB write thread. `@nxtedition/rocksdb` writes a batch synchronously on the calling thread
 * (memtable inserts, WAL append and, for a synced batch, the fdatasync), so on the main thread every
 * write stalls the event loop. The binding can share one open database with a worker thread through
 * its native handle: this worker owns every write, in submission order, while the main thread goes on
 * reading, serving requests and preparing the next batch. The worker (write-worker.ts) writes through a
 * NativeBatchWriter, as the main thread does for the writes it makes inline.
 *
 * The batch crosses threads as one packed buffer (transferred, not copied):
 * `kind u8 | space u8 | keyLength u32 | valueLength u32 | key | value`, repeated.
 */
import type { Worker } from 'node:worker_threads';
import { type EventDbxError, err } from '../../core/errors.js';
import type { Space, WriteOp } from '../engine.js';
import { moduleWorker } from '../module-worker.js';

const HEADER = 10;
const PUT = 0;
const DEL = 1;
const SPACE_CODES: Record<Space, number> = { main: 0, archive: 1 };

/** Packs operations into one buffer that owns its memory, so it can be transferred to the worker. */
export function packOps(ops: readonly WriteOp[]): Buffer {
  let size = 0;
  for (const op of ops) size += HEADER + op.key.length + (op.type === 'put' ? op.value.length : 0);
  const buf = Buffer.allocUnsafeSlow(size);
  let at = 0;
  for (const op of ops) {
    const value = op.type === 'put' ? op.value : undefined;
    buf[at] = value ? PUT : DEL;
    buf[at + 1] = SPACE_CODES[op.space];
    buf.writeUInt32LE(op.key.length, at + 2);
    buf.writeUInt32LE(value?.length ?? 0, at + 6);
    at += HEADER;
    at += op.key.copy(buf, at);
    if (value) at += value.copy(buf, at);
  }
  return buf;
}

/** The ops of a buffer made by `packOps` (keys and values are views into it). */
export function unpackOps(buf: Buffer): WriteOp[] {
  const ops: WriteOp[] = [];
  for (let at = 0; at < buf.length;) {
    const kind = buf[at];
    const space: Space = buf[at + 1] === SPACE_CODES.main ? 'main' : 'archive';
    const keyLength = buf.readUInt32LE(at + 2);
    const valueLength = buf.readUInt32LE(at + 6);
    at += HEADER;
    const key = buf.subarray(at, at + keyLength);
    at += keyLength;
    if (kind === PUT) {
      ops.push({ type: 'put', space, key, value: buf.subarray(at, at + valueLength) });
      at += valueLength;
    } else {
      ops.push({ type: 'del', space, key });
    }
  }
  return ops;
}

interface Pending {
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

/**
 * One worker thread writing batches to an open database, in submission order.
 *
 * @example
 * const thread = new WriteThread(db.handle);
 * await thread.write(packOps(ops), true);
 * await thread.close();
 */
export class WriteThread {
  readonly #worker: Worker;
  readonly #ready: Promise<void>;
  readonly #pending = new Map<number, Pending>();
  /** Settles after the last write submitted (the worker applies writes in order). */
  #last: Promise<unknown> = Promise.resolve();
  #next = 0;
  #failure: Error | undefined;

  /**
   * `coded` turns the engine's text of a failed write into a coded error (default EDBX_ERR_STORE_IO;
   * the engine tells damage from other failures).
   */
  constructor(
    handle: bigint,
    private readonly coded: (reason: string) => EventDbxError = (reason) =>
      err('EDBX_ERR_STORE_IO', { reason: reason.split('\n')[0]!.trim() }),
  ) {
    this.#worker = moduleWorker(import.meta.url, 'write-worker', { workerData: { handle } });
    // Only writes in flight keep the process alive.
    this.#worker.unref();
    this.#ready = new Promise((resolve, reject) => {
      this.#worker.once('message', (m: { ready: boolean; error?: string }) => {
        if (m.ready) resolve();
        else reject(this.#fail(`the write thread could not attach: ${m.error}`));
      });
    });
    // Not awaited by anyone until the first write: keep an early failure from being unhandled.
    this.#ready.catch(() => undefined);
    this.#worker.on('message', (m: { id?: number; error?: string }) => {
      if (m.id === undefined) return;
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#settled(m.id);
      if (m.error === undefined) p.resolve();
      else p.reject(this.coded(m.error));
    });
    this.#worker.on('error', (e) => this.#fail(`the write thread failed: ${e.message}`));
    this.#worker.on('exit', (code) => this.#fail(`the write thread exited (code ${code})`));
  }

  /** No write in flight. */
  get idle(): boolean {
    return this.#pending.size === 0;
  }

  /** Writes one packed batch; resolves once RocksDB has applied it (and synced it, with `sync`). */
  write(buf: Buffer, sync: boolean): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#next++;
    const done = new Promise<void>((resolve, reject) => this.#pending.set(id, { resolve, reject }));
    if (this.#pending.size === 1) this.#worker.ref();
    this.#last = done.catch(() => undefined);
    // Posted at once: the port holds messages until the worker has attached and listens.
    const ab = buf.buffer as ArrayBuffer;
    this.#worker.postMessage({ id, buf: ab, sync }, [ab]);
    return done;
  }

  /** Waits for writes in flight, then stops the worker (the database stays open). */
  async close(): Promise<void> {
    await this.#ready.catch(() => undefined);
    await this.#last;
    this.#failure ??= err('EDBX_ERR_STORE_NOT_OPEN');
    await this.#worker.terminate();
  }

  #settled(id: number): void {
    this.#pending.delete(id);
    if (this.#pending.size === 0) this.#worker.unref();
  }

  #fail(reason: string): Error {
    const e = this.#failure ?? err('EDBX_ERR_STORE_IO', { reason });
    this.#failure = e;
    for (const [id, p] of [...this.#pending]) {
      this.#settled(id);
      p.reject(e);
    }
    return e;
  }
}
