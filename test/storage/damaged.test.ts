/**
 * A data dir whose database lost its CURRENT file (disaster-recovery QA finding 1): RocksDB would start
 * a new, empty database in it and, on the next open, delete the old one's tables and manifest. The open
 * is refused instead, nothing in the directory changes, and the recovery the message gives works.
 *
 * Damaged tables, manifests and CURRENT (DR QA finding 3): RocksDB's `Corruption:` at open, and a
 * damaged block met by a read, are EDBX_ERR_STORE_DAMAGED with the remedy (restore a backup, work on a
 * copy), never EDBX_ERR_STORE_IO whose remedy (a restart) does not help; the first one a read meets is
 * kept and told (a server shows it in /health). A real SST with bytes overwritten, as in the QA report.
 */
import { open as openFile, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RocksDbEngine } from '../../src/storage/rocksdb/rocksdb-engine.js';
import { expectCode } from '../helpers/expect.js';
import { tempDirs } from '../helpers/temp.js';

const tempDir = tempDirs('edbx-damaged-');

const key = (i: number) => Buffer.from(`k${String(i).padStart(5, '0')}`);

async function storeWithTables(n = 100): Promise<string> {
  const dir = await tempDir();
  const engine = new RocksDbEngine(dir);
  await engine.open();
  for (let i = 0; i < n; i += 50)
    await engine.write(
      Array.from({ length: Math.min(50, n - i) }, (_, j) => ({
        type: 'put' as const,
        space: 'main' as const,
        key: key(i + j),
        // Values that do not compress (the table is as large as what it holds); the first byte is i.
        value: Buffer.from(
          Array.from({ length: 512 }, (_, b) =>
            b === 0 ? (i + j) % 256 : ((i + j) * 7919 + b * 104729) % 251,
          ),
        ),
      })),
      { sync: true },
    );
  await engine.close();
  // Opened again: the write-ahead log is flushed into a table (what the QA's store held).
  const again = new RocksDbEngine(dir);
  await again.open();
  await again.close();
  return dir;
}

/** The store's one table, with 32 bytes overwritten at `fraction` of its length. */
async function damageTable(dir: string, fraction: number): Promise<string> {
  const table = (await readdir(dir)).find((f) => f.endsWith('.sst'))!;
  const file = path.join(dir, table);
  const fh = await openFile(file, 'r+');
  try {
    const { size } = await fh.stat();
    await fh.write(Buffer.alloc(32, 'X'), 0, 32, Math.floor(size * fraction));
  } finally {
    await fh.close();
  }
  return file;
}

const REMEDY =
  'restore a backup (README "Backup and restore"); keep this data dir as it is, and look into it or try a repair only on a copy (`cp -a`)';

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
    const dir = await tempDir();
    for (const where of [dir, path.join(dir, 'not-yet')]) {
      const engine = new RocksDbEngine(where);
      await engine.open();
      await engine.close();
      expect(await readdir(where)).toContain('CURRENT');
    }
  });
});

describe('damaged tables, manifests and CURRENT (DR finding 3)', () => {
  it('an open RocksDB finds corrupt is refused as damaged, with the remedy, and nothing is changed', async () => {
    const dir = await storeWithTables();
    const table = (await readdir(dir)).find((f) => f.endsWith('.sst'))!;
    const cases: Array<[string, () => Promise<void>, RegExp]> = [
      ['a table cut short', () => truncate(path.join(dir, table), 1000), /Sst file size mismatch/],
      [
        'a garbled CURRENT',
        () => writeFile(path.join(dir, 'CURRENT'), 'garbage\n'),
        /CURRENT file corrupted/,
      ],
    ];
    for (const [what, damage, reason] of cases) {
      const files = new Map<string, number>();
      await damage();
      for (const f of await readdir(dir)) files.set(f, (await stat(path.join(dir, f))).size);
      const e = await expectCode(new RocksDbEngine(dir).open(), 'EDBX_ERR_STORE_DAMAGED');
      expect(e.message, what).toMatch(reason);
      expect(e.message).toMatch(new RegExp(`^data dir ${dir} is damaged: RocksDB reports Corruption: `));
      expect(e.message).toContain(`nothing in it was changed: ${REMEDY}`);
      expect(e.message.split('\n')).toHaveLength(1);
      for (const f of await readdir(dir)) expect((await stat(path.join(dir, f))).size).toBe(files.get(f));
    }
  });

  it('a read that meets a damaged block answers EDBX_ERR_STORE_DAMAGED, and the engine keeps the first', async () => {
    const dir = await storeWithTables(2000);
    const file = await damageTable(dir, 0.5);
    const engine = new RocksDbEngine(dir);
    await engine.open();
    try {
      const told: string[] = [];
      engine.onDamage((e) => told.push(e.code));
      expect(engine.damage).toBeUndefined();
      const scan = async () => {
        for await (const _ of engine.range('main'));
      };
      const e = await expectCode(scan(), 'EDBX_ERR_STORE_DAMAGED');
      expect(e.message).toMatch(
        new RegExp(
          `^data dir ${dir} is damaged: RocksDB reports Corruption: block checksum mismatch: .* in ${file} offset \\d+`,
        ),
      );
      expect(e.message).toContain(`; ${REMEDY}`);
      expect(engine.damage).toBe(e);
      // Many keys at once (the binding's asynchronous MultiGet lost such errors: the read never ended).
      const keys = Array.from({ length: 2000 }, (_, i) => key(i));
      await expectCode(engine.getMany('main', keys), 'EDBX_ERR_STORE_DAMAGED');
      expect(told).toEqual(['EDBX_ERR_STORE_DAMAGED']);
      // What is not in the damaged block still reads.
      expect((await engine.getMany('main', [key(0)]))[0]).toBeDefined();
    } finally {
      await engine.close();
    }
  }, 30_000);
});
