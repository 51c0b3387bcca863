/**
 * A verification worker (started by VerifyPool): attaches to the store's open RocksDB database and
 * verifies the segments it is given, one task at a time, with the codec each task brings.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { RocksDbEngine } from '../storage/rocksdb/rocksdb-engine.js';
import { codecFromShared } from './codec.js';
import type { VerifyReport } from './types.js';
import { segmentOutcome, verifyWhole } from './verify-segment.js';
import {
  type TaskAnswer,
  type TaskMessage,
  fromWireSegment,
  toWireFailure,
  toWireOutcome,
} from './verify-wire.js';

const port = parentPort;
if (port === null) throw new Error('verify-thread.ts runs as a worker thread');

const { handle, stop } = workerData as { handle: bigint; stop: Int32Array };
const engine = RocksDbEngine.attach(handle);
const opening = engine.open();
/** Set by the pool when the store closes (shared memory: this thread may be busy in synchronous reads). */
const stopping = () => Atomics.load(stop, 0) === 1;

port.on('message', (message: TaskMessage) => {
  void answer(message).then((a) => port.postMessage({ task: message.task, ...a }));
});

async function answer(message: TaskMessage): Promise<TaskAnswer> {
  try {
    await opening;
    const { cancel } = message;
    const stopped = cancel ? () => stopping() || Atomics.load(cancel, 0) === 1 : stopping;
    const source = { engine, codec: codecFromShared(message.codec), stopping: stopped };
    if (message.kind === 'segment') {
      return { outcome: toWireOutcome(await segmentOutcome(source, fromWireSegment(message.segment))) };
    }
    const reports: VerifyReport[] = [];
    for (const [type, id] of message.aggregates) reports.push(await verifyWhole(source, type, id));
    return { reports };
  } catch (failure) {
    return { failure: toWireFailure(failure) };
  }
}
