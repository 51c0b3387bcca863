/**
 * Restores that cannot be misread (QA disaster-recovery findings 5, 6, 7, 8 and 10), on real RocksDB
 * data dirs, without a server: a backup names the keys it needs by fingerprint and a restore refused
 * for its keys says which; a backup's own directory is told from a copy; the temporary directory a
 * crashed backup left is removed by the next one; a backup copied over another store's files is
 * refused before anything in it changes; `backup.json` is recorded only when the store bears it out.
 */
import { spawnSync } from 'node:child_process';
import { cp, mkdir, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { backupStore } from '../src/store/index.js';
import { auditEntries } from '../src/store/audit-log.js';
import { recordRestore, refuseBackupInPlace } from '../src/store/restored.js';
import { type SecureStore, changeKeys, openDataDir } from '../src/store/secure.js';
import { snapshot } from './helpers/snapshot.js';
import { expectCode } from './helpers/expect.js';
import { tempDirs } from './helpers/temp.js';

const ctx = { issuedBy: { group: 'local', user: 'ops' } };
const tempRoot = tempDirs('edbx-dr-');

const open = (dataDir: string, masterKey = 'mk-one', dek = 'dek-one'): Promise<SecureStore> =>
  openDataDir({
    dataDir,
    masterKey,
    dek,
    memoryThreshold: 100,
    maxPayloadBytes: 256 * 1024,
    verifyThreads: 0,
  });

const append = (secure: SecureStore, id: string, n: number) =>
  secure.store.append(
    { aggregate_type: 'acct', aggregate_id: id, event_type: 'posted', payload: { n: String(n) } },
    ctx,
  );

/** A store of `events` events, backed up into `<root>/bk/<name>` as `backup` does it. */
async function storeWithBackup(root: string, events = 5, name = 'b1') {
  const dataDir = path.join(root, 'data');
  const secure = await open(dataDir);
  for (let i = 0; i < events; i++) await append(secure, `a-${i % 2}`, i);
  const target = path.join(root, 'bk', name);
  const report = await backupStore(secure.store, target, ctx, { keys: secure.keyFingerprints() });
  return { secure, dataDir, target, report };
}

describe('a backup names the keys it needs (QA dr #5)', () => {
  it('records their fingerprints, and a restore with the keys of after a rotation says which it needs', async () => {
    const root = await tempRoot();
    const { secure, target, report } = await storeWithBackup(root);
    const before = secure.keyFingerprints();
    expect(before).toEqual({
      master_key: expect.stringMatching(/^[0-9a-f]{16}$/),
      dek: expect.stringMatching(/^[0-9a-f]{16}$/),
      dek_id: 1,
    });
    expect(report.keys).toEqual(before);
    const marker = JSON.parse(await readFile(path.join(target, 'backup.json'), 'utf8'));
    expect(marker.keys).toEqual(before);
    expect(JSON.stringify(marker)).not.toMatch(/mk-one|dek-one/);

    // A routine rotation of both keys; the store's fingerprints follow it.
    await changeKeys(secure, { currentMasterKey: 'mk-one', newMasterKey: 'mk-two', newDek: 'dek-two' }, ctx);
    const after = secure.keyFingerprints();
    expect(after.master_key).not.toBe(before.master_key);
    expect(after.dek).not.toBe(before.dek);
    expect(after.dek_id).toBe(2);
    await secure.store.close();

    const restored = path.join(root, 'restored');
    await cp(target, restored, { recursive: true });
    const wrongMaster = await expectCode(open(restored, 'mk-two', 'dek-two'), 'EDBX_ERR_WRONG_MASTER_KEY');
    expect(wrongMaster.message).toContain(
      `backup taken at ${marker.taken_at} under the master key with fingerprint ${before.master_key}, and the master key given has fingerprint ${after.master_key}`,
    );
    const wrongDek = await expectCode(open(restored, 'mk-one', 'dek-two'), 'EDBX_ERR_DEK_MISMATCH');
    expect(wrongDek.message).toContain(
      `with the DEK of fingerprint ${before.dek} active (key id 1), and the DEK given has fingerprint ${after.dek}`,
    );
    expect(wrongDek.message).not.toContain('to rotate to a new one');
    const old = await open(restored, 'mk-one', 'dek-one');
    expect(old.store.size).toBe(report.events);
    await old.store.close();
  });
});

describe('a backup copied over another store (QA dr #8)', () => {
  it('is refused before the open, and nothing in the data dir changes', async () => {
    const root = await tempRoot();
    const { secure, dataDir, target } = await storeWithBackup(root);
    for (let i = 0; i < 40; i++) await append(secure, 'later', i); // the newer store's write-ahead log
    await secure.store.close();
    const over = path.join(root, 'over');
    await cp(dataDir, over, { recursive: true });
    await cp(target, over, { recursive: true, force: true }); // cp -a backup/. over/
    const files = await snapshot(over);
    const e = await expectCode(open(over), 'EDBX_ERR_STORE_DAMAGED');
    expect(e.message).toContain('but also holds database files the backup does not have');
    expect(e.message).toContain('restore into an empty directory');
    expect(await snapshot(over)).toEqual(files);
  });

  it('refuses an incomplete copy, and opens a whole one again after its first open', async () => {
    const root = await tempRoot();
    const { secure, target, report } = await storeWithBackup(root);
    await secure.store.close();
    const partial = path.join(root, 'partial');
    await cp(target, partial, { recursive: true });
    const sst = (await readdir(partial)).find((n) => n.endsWith('.sst'))!;
    await rm(path.join(partial, sst));
    const e = await expectCode(open(partial), 'EDBX_ERR_STORE_DAMAGED');
    expect(e.message).toContain(`lacks database files of the backup (${sst})`);

    const whole = path.join(root, 'whole');
    await cp(target, whole, { recursive: true });
    for (let round = 0; round < 2; round++) {
      const copy = await open(whole); // then its files are its own: not compared again
      expect(copy.store.size).toBe(report.events + round);
      await append(copy, 'after', round);
      await copy.store.close();
    }
  });
});

describe('backup.json is checked against the store before the restore is recorded (QA dr #10)', () => {
  it.each([
    [
      'fewer events (another point)',
      (m: Record<string, unknown>) => ({ ...m, events: 2 }),
      /ledger root at 2 events is/,
    ],
    [
      'more events than the store holds',
      (m: Record<string, unknown>) => ({ ...m, events: 500 }),
      /holds 500 events, but this store holds 5/,
    ],
    [
      'another ledger root',
      (m: Record<string, unknown>) => ({ ...m, ledger_root: 'ab'.repeat(32) }),
      /ledger root at 5 events is abab/,
    ],
  ])('refuses a backup.json that says %s, and records nothing', async (_what, edit, reason) => {
    const root = await tempRoot();
    const { secure, target } = await storeWithBackup(root);
    await secure.store.close();
    const restored = path.join(root, 'restored');
    await cp(target, restored, { recursive: true });
    const file = path.join(restored, 'backup.json');
    await writeFile(file, JSON.stringify(edit(JSON.parse(await readFile(file, 'utf8')))));
    const copy = await open(restored);
    try {
      const e = await expectCode(recordRestore(copy.store, restored, ctx.issuedBy), 'EDBX_ERR_INTEGRITY');
      expect(e.message).toMatch(reason);
      expect(e.message).toContain('nothing was recorded');
      expect((await auditEntries(copy.store, {})).map((x) => x.event_type)).not.toContain('store-restored');
      expect(await readdir(restored)).toContain('backup.json');
    } finally {
      await copy.store.close();
    }
  });

  it('records a restore whose store grew after the copy (commands run before its first server)', async () => {
    const root = await tempRoot();
    const { secure, target, report } = await storeWithBackup(root);
    await secure.store.close();
    const restored = path.join(root, 'restored');
    await cp(target, restored, { recursive: true });
    const copy = await open(restored);
    try {
      for (let i = 0; i < 3; i++) await append(copy, 'since', i);
      const marker = await recordRestore(copy.store, restored, ctx.issuedBy);
      expect(marker?.events).toBe(report.events);
      const entries = (await auditEntries(copy.store, {})).filter((x) => x.event_type === 'store-restored');
      expect(entries.map((x) => x.payload.backup_events)).toEqual([String(report.events)]);
    } finally {
      await copy.store.close();
    }
  });
});

describe('a restore on a host whose clock is behind the backup (qa-time #1, #2)', () => {
  it('is recorded after the backup, and once: a crash before backup.json is removed records no second', async () => {
    const root = await tempRoot();
    // The backup was taken where the clock was a day ahead, a minute after the last event.
    vi.useFakeTimers({ toFake: ['Date'] });
    let target: string;
    let report: Awaited<ReturnType<typeof backupStore>>;
    try {
      const ahead = Date.now() + 86_400_000;
      vi.setSystemTime(ahead);
      const secure = await open(path.join(root, 'data'));
      for (let i = 0; i < 5; i++) await append(secure, `a-${i % 2}`, i);
      vi.setSystemTime(ahead + 60_000);
      target = path.join(root, 'bk', 'b1');
      report = await backupStore(secure.store, target, ctx, { keys: secure.keyFingerprints() });
      await secure.store.close();
    } finally {
      vi.useRealTimers();
    }
    const restored = path.join(root, 'restored');
    await cp(target, restored, { recursive: true });
    const markerText = await readFile(path.join(restored, 'backup.json'), 'utf8');
    const copy = await open(restored);
    try {
      const marker = await recordRestore(copy.store, restored, ctx.issuedBy);
      const restores = async () =>
        (await auditEntries(copy.store, {})).filter((x) => x.event_type === 'store-restored');
      const [entry] = await restores();
      expect(entry!.metadata.created_at >= marker!.taken_at).toBe(true);
      expect(entry!.position).toBe(report.events + 1);
      // A crash between the record and the marker's removal: the next start finds the marker again.
      await writeFile(path.join(restored, 'backup.json'), markerText);
      await recordRestore(copy.store, restored, ctx.issuedBy);
      expect(await restores()).toHaveLength(1);
    } finally {
      await copy.store.close();
    }
  });
});

describe("a backup's own directory (QA dr #6)", () => {
  it('is told from a copy: a server would start on it only with --consume-backup', async () => {
    const root = await tempRoot();
    const { secure, target } = await storeWithBackup(root);
    await secure.store.close();
    const e = await expectCode(refuseBackupInPlace(target, false), 'EDBX_ERR_BACKUP_IN_PLACE');
    expect(e.message).toContain(`${target} is the backup taken at`);
    expect(e.message).toContain('--consume-backup');
    await refuseBackupInPlace(target, true);
    const copy = path.join(root, 'copy');
    await cp(target, copy, { recursive: true });
    await refuseBackupInPlace(copy, false);
    // Through a link to it, it is still the backup itself.
    const link = path.join(root, 'link');
    await symlink(target, link);
    await expectCode(refuseBackupInPlace(link, false), 'EDBX_ERR_BACKUP_IN_PLACE');
  });
});

describe('the temporary directory of a backup a crash ended (QA dr #7)', () => {
  it('is removed by the next backup into the same directory, and nothing else is', async () => {
    const root = await tempRoot();
    const bk = path.join(root, 'bk');
    await mkdir(bk);
    const host = os.hostname().replace(/[^A-Za-z0-9.-]/g, '_') || 'host';
    // A process that has ended: its PID is gone.
    const dead = spawnSync(process.execPath, [
      '-e',
      'process.stdout.write(String(process.pid))',
    ]).stdout.toString();
    const leftovers = {
      crashed: `.b0.backup-${host}-${dead}-1aae573e`,
      earlier: `.b0.backup-${dead}-28a132e0`, // named as versions before the host was in it
      running: `.b0.backup-${host}-${process.pid}-0badf00d`,
      otherHost: `.b0.backup-elsewhere.example-${dead}-0c0ffee0`,
      notOurs: `.b0.backup-${host}-${dead}-feedf00d`,
    };
    for (const name of Object.values(leftovers)) {
      await mkdir(path.join(bk, name));
      await writeFile(path.join(bk, name, '000008.sst'), 'sealed copy');
      await writeFile(path.join(bk, name, 'keyring.json'), '{}');
    }
    await writeFile(path.join(bk, leftovers.notOurs, 'notes.txt'), 'not a backup file');
    const { secure, report } = await storeWithBackup(root, 3);
    await secure.store.close();
    expect([...report.removed_temp_dirs].sort()).toEqual(
      [path.join(bk, leftovers.crashed), path.join(bk, leftovers.earlier)].sort(),
    );
    expect((await readdir(bk)).sort()).toEqual(
      ['b1', leftovers.notOurs, leftovers.otherHost, leftovers.running].sort(),
    );
  });
});
