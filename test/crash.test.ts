import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { RocksDbEngine } from '../src/storage/rocksdb/rocksdb-engine.js';
import { EventStore, verifyAll } from '../src/store/index.js';
import { tempDirs } from './helpers/temp.js';

const fixture = fileURLToPath(new URL('./fixtures/crash-writer.mjs', import.meta.url));

/** Run the writer until it has acknowledged at least `minAcks` appends, then SIGKILL it. */
function runAndKill(dir: string, minAcks: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fixture, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let buffer = '';
    let stderr = '';
    const acks: string[] = [];
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.on('data', (d: Buffer) => {
      buffer += d.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop()!;
      for (const l of lines) if (l !== 'ready') acks.push(l);
      if (acks.length >= minAcks && !child.killed) child.kill('SIGKILL');
    });
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(acks);
      else reject(new Error(`writer exited with ${code}: ${stderr}`));
    });
  });
}

describe('crash safety (kill -9)', () => {
  const tempDir = tempDirs('edbx-crash-');

  it('every acknowledged append survives SIGKILL and every aggregate verifies, over several cycles', async () => {
    const dir = await tempDir();
    const acked = new Map<string, string>();
    for (let cycle = 0; cycle < 4; cycle++) {
      const acks = await runAndKill(dir, 300 + cycle * 200);
      for (const a of acks) {
        const [id, version, hash] = a.split(' ');
        acked.set(`${id}@${version}`, hash!);
      }
      const store = await EventStore.open({ engine: new RocksDbEngine(dir) });
      try {
        let missing = 0;
        for (const [key, hash] of acked) {
          const [id, version] = key.split('@');
          const e = await store.event('load', id!, Number(version)).catch(() => undefined);
          if (!e || e.hash !== hash) missing++;
        }
        expect(missing).toBe(0);
        const report = await verifyAll(store);
        expect(report.failures).toEqual([]);
        expect(report.ledger.ok).toBe(true);
        expect(report.events).toBeGreaterThanOrEqual(acked.size);
      } finally {
        await store.close();
      }
    }
  });
});
