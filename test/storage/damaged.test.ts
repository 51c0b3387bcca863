/**
 * A data dir whose database lost its CURRENT file (disaster-recovery QA finding 1): RocksDB would start
 * a new, empty database in it and, on the next open, delete the old one's tables and manifest. The open
 * is refused instead, nothing in the directory changes, and the recovery the message gives works.
 */
import { readdir, rm, writeFile } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RocksDbEngine } from '../../src/storage/rocksdb/rocksdb-engine.js';
import { expectCode } from '../helpers/expect.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const key = (i: number) => Buffer.from(`k${String(i).padStart(5, '0')}`);

async function storeWithTables(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'edbx-damaged-'));
  dirs.push(dir);
  const engine = new RocksDbEngine(dir);
  await engine.open();
  for (let i = 0; i < 100; i++)
    await engine.write([{ type: 'put', space: 'main', key: key(i), value: Buffer.alloc(512, i) }], {
      sync: true,
    });
  await engine.close();
  return dir;
}

describe('a database without its CURRENT file (DR finding 1)', () => {
  it('is refused, twice, with nothing in the data dir changed; writing CURRENT back recovers every key', async () => {
    const dir = await storeWithTables();
    const files = (await readdir(dir)).sort();
    const manifest = files.find((f) => f.startsWith('MANIFEST-'))!;
    expect(files.some((f) => f.endsWith('.sst') || /^\d+\.log$/.test(f))).toBe(true);
    await rm(path.join(dir, 'CURRENT'));
    const without = files.filter((f) => f !== 'CURRENT');

    for (let attempt = 0; attempt < 2; attempt++) {
      const e = await expectCode(new RocksDbEngine(dir).open(), 'EDBX_ERR_STORE_DAMAGED');
      expect(e.message).toContain(`data dir ${dir} is damaged: it holds a database's files (`);
      expect(e.message).toContain(`\`echo ${manifest} > CURRENT\``);
      expect(e.message.split('\n')).toHaveLength(1);
      expect((await readdir(dir)).sort()).toEqual(without);
    }

    await writeFile(path.join(dir, 'CURRENT'), `${manifest}\n`);
    const engine = new RocksDbEngine(dir);
    await engine.open();
    try {
      const values = await engine.getMany('main', [key(0), key(99)]);
      expect(values.map((v) => v?.[0])).toEqual([0, 99]);
    } finally {
      await engine.close();
    }
  });

  it('a new or empty directory still becomes a new database', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'edbx-damaged-'));
    dirs.push(dir);
    for (const where of [dir, path.join(dir, 'not-yet')]) {
      const engine = new RocksDbEngine(where);
      await engine.open();
      await engine.close();
      expect(await readdir(where)).toContain('CURRENT');
    }
  });
});
