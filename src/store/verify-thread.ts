/**
 * A verification worker (started by VerifyPool): attaches to the store's open RocksDB database and
 * verifies the segments it is given, one task at a time, with the codec each task brings.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { RocksDbEngine } from '../storage/rocksdb/rocksdb-engine.js';
import { codecFromShared } from './codec.js';
import { type TaskMessage, type WireOutcome, fromWireSegment, toWireOutcome } from './verify-wire.js';
import { verifySegment } from './verify-segment.js';

const port = parentPort;
if (port === null) throw new Error('verify-thread.ts runs as a worker thread');

const engine = RocksDbEngine.attach((workerData as { handle: bigint }).handle);
const opening = engine.open();
let stopping = false;

port.on('message', (message: TaskMessage | { kind: 'stop' }) => {
  if (message.kind === 'stop') {
    stopping = true;
    return;
  }
  void run(message).then((outcomes) => port.postMessage({ task: message.task, outcomes }));
});

async function run(message: TaskMessage): Promise<WireOutcome[]> {
  const outcomes: WireOutcome[] = [];
  try {
    await opening;
    const source = { engine, codec: codecFromShared(message.codec), stopping: () => stopping };
    for (const wire of message.segments) {
      outcomes.push(
        await verifySegment(source, fromWireSegment(wire)).then(
          (result) => toWireOutcome({ ok: true, result }),
          (failure: unknown) => toWireOutcome({ ok: false, failure }),
        ),
      );
    }
  } catch (failure) {
    while (outcomes.length < message.segments.length) outcomes.push(toWireOutcome({ ok: false, failure }));
  }
  return outcomes;
}
