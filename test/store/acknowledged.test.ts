/**
 * The acknowledged-head file (src/store/acknowledged.ts): RocksDB drops the newest writes of a
 * write-ahead log that is damaged or cut short, with every index and the ledger head alike, so the
 * store's own checks agree with the shorter store (QA audit #1). The file, kept outside RocksDB, says
 * how many events were acknowledged: a store holding fewer refuses writes and fails verify, naming
 * what is lost and what to do; moving the file aside accepts the loss.
 */
import { cp, readFile, readdir, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isEventDbxError } from '../../src/core/errors.js';
import {
  ACKNOWLEDGED_HEAD,
  AcknowledgedHeadFile,
  readAcknowledgedHead,
} from '../../src/store/acknowledged.js';
import { createEngine } from '../../src/storage/index.js';
import { globalKey } from '../../src/store/keys.js';
import { backupStore } from '../../src/store/backup.js';
import { KEYRING_COPY, type SecureStore, openDataDir } from '../../src/store/secure.js';
import { verifyAll } from '../../src/store/verify.js';
import { tempDirs } from '../helpers/temp.js';

const tempDir = tempDirs('edbx-ack-');

const ctx = { issuedBy: { group: 'doctors', user: 'ana' } };

const open = (dataDir: string): Promise<SecureStore> =>
  openDataDir({
    dataDir,
    masterKey: 'ack-master',
    dek: 'ack-dek',
    memoryThreshold: 100,
    maxPayloadBytes: 256 * 1024,
    verifyThreads: 0,
  });

const append = (secure: SecureStore, id: string) =>
  secure.store.append(
    { aggregate_type: 'patient', aggregate_id: id, event_type: 'patient-updated', payload: { n: id } },
    ctx,
  );

async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  );
}

/** The newest write-ahead log of a closed RocksDB data dir, cut `bytes` short. */
async function cutWal(dataDir: string, bytes: number): Promise<void> {
  const logs = (await readdir(dataDir)).filter((f) => /^\d+\.log$/.test(f)).sort();
  const wal = path.join(dataDir, logs.at(-1)!);
  await truncate(wal, (await stat(wal)).size - bytes);
}

describe('a store cut short behind its back', () => {
  it('refuses writes and fails verify when its write-ahead log lost acknowledged events', async () => {
    const dataDir = path.join(await tempDir(), 'data');
    let secure = await open(dataDir);
    for (let i = 1; i <= 10; i++) await append(secure, `p-${i}`);
    await secure.store.close();
    await cutWal(dataDir, 300);

    // What RocksDB alone makes of it: fewer events, and every check of the store's own agrees.
    secure = await open(dataDir).catch((e: unknown) => {
      throw new Error(`the store should open (reads work): ${String(e)}`);
    });
    try {
      const held = secure.store.size;
      expect(held).toBeLessThan(10);
      const loss = secure.store.acknowledgedLoss;
      expect(loss?.code).toBe('EDBX_ERR_INTEGRITY');
      expect(loss?.message).toContain(`it holds ${held} events but had acknowledged 10`);
      expect(loss?.message).toContain(`move ${path.join(dataDir, ACKNOWLEDGED_HEAD)} aside`);
      // Reads still work; writes are refused with the same error.
      expect((await secure.store.aggregate('patient', 'p-1')).version).toBe(1);
      const refused = await failure(append(secure, 'p-11'));
      expect(isEventDbxError(refused, 'EDBX_ERR_INTEGRITY')).toBe(true);
      expect((refused as Error).message).toBe(loss!.message);
      const report = await verifyAll(secure.store);
      expect(report.ok).toBe(false);
      expect(report.ledger).toMatchObject({ ok: false, first_bad_position: held + 1 });
      expect(report.ledger.ok ? '' : report.ledger.reason).toContain('had acknowledged 10');
    } finally {
      await secure.store.close();
    }
    // The file is the evidence: opening the short store again leaves it as it was.
    secure = await open(dataDir);
    expect(secure.store.acknowledgedLoss?.message).toContain('had acknowledged 10');
    await secure.store.close();

    // Moving the file aside accepts the loss: writes go on, and a new file follows them.
    await rename(path.join(dataDir, ACKNOWLEDGED_HEAD), path.join(dataDir, 'lost'));
    secure = await open(dataDir);
    try {
      expect(secure.store.acknowledgedLoss).toBeUndefined();
      const held = secure.store.size;
      await append(secure, 'p-11');
      expect((await verifyAll(secure.store)).ok).toBe(true);
      await secure.store.close();
      expect((await readAcknowledgedHead(path.join(dataDir, ACKNOWLEDGED_HEAD)))?.size).toBe(held + 1);
    } finally {
      await secure.store.close();
    }
  });

  it('keeps up with commits while the store is open, within its interval', async () => {
    const dataDir = path.join(await tempDir(), 'data');
    const secure = await open(dataDir);
    const file = path.join(dataDir, ACKNOWLEDGED_HEAD);
    try {
      expect((await readAcknowledgedHead(file))?.size).toBe(0);
      for (let i = 1; i <= 5; i++) await append(secure, `p-${i}`);
      const deadline = Date.now() + 5_000;
      let size: number | undefined;
      while (Date.now() < deadline) {
        size = (await readAcknowledgedHead(file))?.size;
        if (size === 5) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(size).toBe(5);
      expect((await readAcknowledgedHead(file))?.root).toBe(secure.store.ledgerHead().root);
      expect((await stat(file)).mode & 0o777).toBe(0o600);
    } finally {
      await secure.store.close();
    }
  });
});

describe('the acknowledged-head file', () => {
  const head = (size: number) => () => ({ size, root: String(size % 10).repeat(64) });

  it('reads the newer of its two records; a torn record leaves the other', async () => {
    const file = path.join(await tempDir(), ACKNOWLEDGED_HEAD);
    expect(await readAcknowledgedHead(file)).toBeUndefined();
    let size = 3;
    const keeper = await AcknowledgedHeadFile.start(file, () => head(size)(), undefined, 1);
    expect((await readAcknowledgedHead(file))?.size).toBe(3);
    size = 4;
    await keeper.close();
    expect((await readAcknowledgedHead(file))?.size).toBe(4);
    // Size 4 went to the second record: tear it, and the first (3) is what is read.
    const bytes = await readFile(file);
    bytes[512 + 10]! ^= 0xff;
    await writeFile(file, bytes);
    expect((await readAcknowledgedHead(file))?.size).toBe(3);
    // Neither record opens: damaged or edited, said so.
    bytes[10]! ^= 0xff;
    await writeFile(file, bytes);
    const e = await failure(readAcknowledgedHead(file));
    expect(isEventDbxError(e, 'EDBX_ERR_INTEGRITY')).toBe(true);
    expect((e as Error).message).toContain(`move ${file} aside`);
  });

  it('is never written ahead of the store, nor backwards', async () => {
    const file = path.join(await tempDir(), ACKNOWLEDGED_HEAD);
    const keeper = await AcknowledgedHeadFile.start(file, head(7), undefined, 1);
    await keeper.close();
    const found = await readAcknowledgedHead(file);
    // A store that holds fewer (the file found says 7): nothing is written over the evidence.
    const again = await AcknowledgedHeadFile.start(file, head(5), found, 1);
    again.committed();
    await new Promise((r) => setTimeout(r, 20));
    await again.close();
    expect((await readAcknowledgedHead(file))?.size).toBe(7);
  });
});

describe('a store that lost its keyring', () => {
  it('is refused, and the keyring copy is left as it was (no new keys written over it)', async () => {
    const dataDir = path.join(await tempDir(), 'data');
    const secure = await open(dataDir);
    await append(secure, 'p-1');
    await secure.store.close();
    const copy = await readFile(path.join(dataDir, KEYRING_COPY), 'utf8');
    const engine = createEngine('rocksdb', dataDir);
    await engine.open();
    await engine.write([{ type: 'del', space: 'main', key: globalKey('keyring') }], { sync: true });
    await engine.close();

    const e = await failure(open(dataDir));
    expect(isEventDbxError(e, 'EDBX_ERR_INTEGRITY')).toBe(true);
    expect((e as Error).message).toContain('the keyring: the store holds none but');
    expect(await readFile(path.join(dataDir, KEYRING_COPY), 'utf8')).toBe(copy);
  });
});

describe('a backup restored over the files of a newer store', () => {
  it('writes its acknowledged head anew instead of taking the newer store for a loss', async () => {
    const root = await tempDir();
    const dataDir = path.join(root, 'data');
    let secure = await open(dataDir);
    for (let i = 1; i <= 3; i++) await append(secure, `p-${i}`);
    await backupStore(secure.store, path.join(root, 'backup'), ctx);
    for (let i = 4; i <= 6; i++) await append(secure, `p-${i}`);
    const after = secure.store.size;
    await secure.store.close();
    // The backup's files copied into the data dir, the newer store's acknowledged-head left there.
    const ack = await readFile(path.join(dataDir, ACKNOWLEDGED_HEAD));
    await rm(dataDir, { recursive: true });
    await cp(path.join(root, 'backup'), dataDir, { recursive: true });
    await writeFile(path.join(dataDir, ACKNOWLEDGED_HEAD), ack);
    expect((await readAcknowledgedHead(path.join(dataDir, ACKNOWLEDGED_HEAD)))?.size).toBe(after);

    secure = await open(dataDir);
    try {
      expect(secure.store.size).toBeLessThan(after);
      expect(secure.store.acknowledgedLoss).toBeUndefined();
      await append(secure, 'p-7');
      await secure.store.close();
      expect((await readAcknowledgedHead(path.join(dataDir, ACKNOWLEDGED_HEAD)))?.size).toBe(
        secure.store.size,
      );
    } finally {
      await secure.store.close();
    }
  });
});
