/**
 * The write thread's worker (see write-thread.ts): attaches to the database the main thread opened and
 * writes each packed batch it is sent, in order, through one reusable native batch. It must never
 * close the database: the main thread closes it after terminating this worker.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { NativeBatchWriter } from './native-batch.js';
import { unpackOps } from './write-thread.js';

const port = parentPort;
if (port === null) throw new Error('write-worker.ts runs as a worker thread');

const reason = (e: unknown): string => {
  const x = e as { message?: unknown; cause?: { message?: unknown } } | undefined;
  return String(x?.cause?.message ?? x?.message ?? e);
};

try {
  const writer = new NativeBatchWriter((workerData as { handle: bigint }).handle);
  const columns = writer.columns();
  port.postMessage({ ready: true });
  port.on('message', ({ id, buf, sync }: { id: number; buf: ArrayBuffer; sync: boolean }) => {
    try {
      writer.write(unpackOps(Buffer.from(buf)), columns, sync);
      port.postMessage({ id });
    } catch (e) {
      port.postMessage({ id, error: reason(e) });
    }
  });
} catch (e) {
  port.postMessage({ ready: false, error: reason(e) });
}
