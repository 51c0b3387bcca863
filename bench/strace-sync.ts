/**
 * Durability check for the RocksDB engine: how many fsync-family calls does a batch cost?
 *
 * Run the compiled file under strace; the phases are delimited by `access()` calls on marker paths:
 *
 *   strace -f -e trace=fsync,fdatasync,sync_file_range,access,faccessat,faccessat2 \
 *     node dist/bench/strace-sync.js 2>&1 | grep -E 'edbx-mark|sync'
 *
 * Expected: one fdatasync per `sync: true` batch, none for `sync: false`.
 * Without strace it still prints the average latency of both kinds of batch.
 */
import { accessSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { RocksDbEngine } from '../src/storage/rocksdb/rocksdb-engine.js';

const BATCHES = 20;

function mark(phase: string): void {
  try {
    accessSync(`/nonexistent/edbx-mark-${phase}`);
  } catch {
    // The failed syscall is the marker.
  }
}

async function phase(engine: RocksDbEngine, name: string, sync: boolean): Promise<number> {
  mark(`${name}-begin`);
  const start = performance.now();
  for (let i = 0; i < BATCHES; i++) {
    const key = Buffer.from(`${name}/${i}`);
    await engine.write(
      [
        { type: 'put', space: 'main', key, value: Buffer.from('value') },
        { type: 'put', space: 'archive', key, value: Buffer.from('value') },
      ],
      { sync },
    );
  }
  const elapsed = performance.now() - start;
  mark(`${name}-end`);
  return elapsed / BATCHES;
}

const dir = await mkdtemp(path.join(os.tmpdir(), 'edbx-strace-'));
const engine = new RocksDbEngine(path.join(dir, 'data'));
try {
  await engine.open();
  const synced = await phase(engine, 'sync', true);
  const unsynced = await phase(engine, 'nosync', false);
  console.log(`batches per phase: ${BATCHES}`);
  console.log(`sync: true   ${synced.toFixed(3)} ms/batch`);
  console.log(`sync: false  ${unsynced.toFixed(3)} ms/batch`);
} finally {
  await engine.close();
  await rm(dir, { recursive: true, force: true });
}
