/**
 * Online backups on real RocksDB: a backup taken while appenders run is one consistent point in time
 * (every event acknowledged before it started, a gap-free ledger prefix, both keyspaces), opens with
 * the same keys and verifies; a target that is not new or empty is refused; a cancelled backup leaves
 * nothing behind. Each backup written is recorded in the audit log (`backup-taken`, QA audit finding 5)
 * after it is in place, so the copy does not hold it; one that fails, is cancelled or cannot be
 * recorded leaves neither a backup nor an entry.
 */
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { archiveAggregate, backupStore, verifyAll } from '../src/store/index.js';
import { auditEntries } from '../src/store/audit-log.js';
import { verifyAuditLog } from '../src/store/audit-state.js';
import { type SecureStore, openDataDir } from '../src/store/secure.js';
import { EventStore } from '../src/store/store.js';
import { frontierBytes } from '../src/store/ledger-head.js';
import { globalKey } from '../src/store/keys.js';
import { decodeFrontier } from '../src/core/merkle/index.js';
import { MemoryEngine, RocksDbEngine } from '../src/storage/index.js';
import type { EventRecord } from '../src/core/event.js';
import type { AuditAction, BackupTakenPayload } from '../src/client/index.js';
import { expectCode } from './helpers/expect.js';
import { tempDirs } from './helpers/temp.js';

const ctx = { issuedBy: { group: 'admin', user: 'jane' } };
/** An acknowledged event as the ledger holds it. */
const ref = (e: EventRecord): string => `${e.aggregate_id}/${e.version}@${e.position}`;
const tempRoot = tempDirs('edbx-backup-');

/** 1,500 one-event aggregates: enough for a backup to be cancelled, or to fail, part way. */
const manyPatients = (secure: SecureStore) =>
  secure.store.appendMany(
    Array.from({ length: 1500 }, (_, i) => ({
      aggregate_type: 'patient',
      aggregate_id: `p-${i}`,
      event_type: 'patient-added',
      payload: { n: String(i) },
    })),
    ctx,
  );

const open = (dataDir: string): Promise<SecureStore> =>
  openDataDir({
    dataDir,
    masterKey: 'backup-master',
    dek: 'backup-dek',
    memoryThreshold: 100,
    maxPayloadBytes: 256 * 1024,
    verifyThreads: 0,
  });

const append = (secure: SecureStore, id: string, n: number) =>
  secure.store.append(
    { aggregate_type: 'patient', aggregate_id: id, event_type: 'patient-updated', payload: { n: String(n) } },
    ctx,
  );

describe('backupStore', () => {
  it('copies one point in time while appenders run: it opens with the same keys and verifies', async () => {
    const root = await tempRoot();
    const secure = await open(path.join(root, 'data'));
    const target = path.join(root, 'backups', 'b1');
    try {
      for (let i = 0; i < 300; i++) await append(secure, `p-${i % 30}`, i);
      // Archived aggregates live in the other keyspace: both must be in the copy.
      await append(secure, 'cold', 0);
      await archiveAggregate(secure.store, 'patient', 'cold', ctx);
      const acked = new Set<string>();
      let stop = false;
      const appenders = Array.from({ length: 8 }, async (_, w) => {
        for (let n = 0; !stop; n++) acked.add(ref(await append(secure, `w-${w}-${n % 5}`, n)));
      });
      while (acked.size < 200) await new Promise((r) => setTimeout(r, 5));
      const before = new Set(acked);
      const report = await backupStore(secure.store, target, ctx);
      const during = acked.size;
      stop = true;
      await Promise.all(appenders);
      expect(report.path).toBe(target);
      expect(report.entries.archive).toBeGreaterThan(0);
      expect(report.bytes).toBeGreaterThan(0);
      expect(report.events).toBeGreaterThanOrEqual(302 + before.size);
      expect(secure.store.size).toBeGreaterThan(302 + before.size);
      expect(during).toBeGreaterThan(before.size); // the appenders ran on while it copied
      await secure.store.close();

      expect((await stat(target)).mode & 0o777).toBe(0o700);
      const files = await readdir(target);
      expect(files).toContain('keyring.json');
      expect(files.filter((f) => /^(eventdbx\.|control\.sock|\.eventdbx\.json)/.test(f))).toEqual([]);
      for (const f of files) expect(((await stat(path.join(target, f))).mode & 0o077).toString(8)).toBe('0');
      expect((await readdir(path.dirname(target))).sort()).toEqual(['b1']); // no temp dir left
      // backup.json names the copy's storage layout: a backup restores into a build that reads it (qa-ops #5).
      expect(report.layout).toBe(2);
      expect(JSON.parse(await readFile(path.join(target, 'backup.json'), 'utf8'))).toEqual({
        taken_at: expect.any(String),
        events: report.events,
        ledger_root: report.ledger_root,
        layout: 2,
        path: target,
        files: expect.objectContaining({ CURRENT: expect.any(Number) }),
      });

      const copy = await open(target);
      try {
        expect(copy.dek).toBe('active');
        expect(copy.store.ledgerHead()).toEqual({ size: report.events, root: report.ledger_root });
        const verified = await verifyAll(copy.store);
        expect(verified.failures).toEqual([]);
        expect(verified.ok).toBe(true);
        const log = await copy.store.readLog(1, report.events + 10);
        expect(log.map((e) => e.position)).toEqual(Array.from({ length: report.events }, (_, i) => i + 1));
        const ids = new Set(log.map(ref));
        for (const id of before) expect(ids.has(id)).toBe(true);
        expect((await copy.store.meta('patient', 'cold'))?.meta.archived).toBe(true);
        expect(await copy.store.events('patient', 'cold')).toHaveLength(1);
      } finally {
        await copy.store.close();
      }
    } finally {
      if (secure.store.engine.status === 'open') await secure.store.close();
    }
  });

  it.each([
    ['rocksdb', (root: string) => new RocksDbEngine(path.join(root, 'data'))],
    ['in-memory', () => new MemoryEngine()],
  ] as const)('pins between two group commits, and backs up a store on the %s engine', async (_, make) => {
    const root = await tempRoot();
    const store = await EventStore.open({ engine: make(root), verification: { threads: 0 } });
    const heads: Array<[number, number]> = [];
    try {
      let stop = false;
      const appenders = Array.from({ length: 8 }, async (_, w) => {
        for (let n = 0; !stop; n++)
          await store.append(
            { aggregate_type: 'patient', aggregate_id: `w-${w}`, event_type: 'e', payload: { n: String(n) } },
            ctx,
          );
      });
      while (store.size < 500) await new Promise((r) => setTimeout(r, 5));
      // At rest, the ledger on disk is the committed one: no batch is half way through its commit.
      for (let i = 0; i < 50; i++)
        heads.push(
          await store.atRest(() => {
            const [raw] = store.engine.getManySync('main', [globalKey('ledger')]);
            return [decodeFrontier(raw!.subarray(0, frontierBytes(raw!))).size, store.ledgerHead().size];
          }),
        );
      const report = await backupStore(store, path.join(root, 'b'), ctx);
      stop = true;
      await Promise.all(appenders);
      const copy = await EventStore.open({ engine: new RocksDbEngine(path.join(root, 'b')) });
      try {
        expect(copy.ledgerHead()).toEqual({ size: report.events, root: report.ledger_root });
        expect((await verifyAll(copy)).ok).toBe(true);
      } finally {
        await copy.close();
      }
    } finally {
      await store.close();
    }
    for (const [stored, committed] of heads) expect(stored).toBe(committed);
  });

  it('refuses a target that is a file, a directory that is not empty, or in the data dir', async () => {
    const root = await tempRoot();
    const dataDir = path.join(root, 'data');
    const secure = await open(dataDir);
    try {
      await append(secure, 'p-1', 1);
      const full = path.join(root, 'full');
      await mkdir(full);
      await writeFile(path.join(full, 'old'), 'x');
      const file = path.join(root, 'file');
      await writeFile(file, 'x');
      for (const target of [full, file]) {
        const e = await expectCode(backupStore(secure.store, target, ctx), 'EDBX_ERR_BACKUP_TARGET');
        expect(e.message).toContain(target);
      }
      await expectCode(
        backupStore(secure.store, path.join(dataDir, 'inside'), ctx, { dataDir }),
        'EDBX_ERR_BACKUP_TARGET',
      );
      expect(await readdir(full)).toEqual(['old']);
      // An empty directory is taken.
      const empty = path.join(root, 'empty');
      await mkdir(empty);
      expect((await backupStore(secure.store, empty, ctx)).events).toBe(1);
      expect(await readdir(empty)).toContain('keyring.json');
      expect((await readdir(root)).sort()).toEqual(['data', 'empty', 'file', 'full']);
    } finally {
      await secure.store.close();
    }
  });

  it('leaves nothing at the target and no temp dir when cancelled part way', async () => {
    const root = await tempRoot();
    const secure = await open(path.join(root, 'data'));
    try {
      await manyPatients(secure);
      const stop = new AbortController();
      const target = path.join(root, 'b');
      const chunks: number[] = [];
      await expectCode(
        backupStore(secure.store, target, ctx, {
          signal: stop.signal,
          progress: (done) => {
            chunks.push(done);
            stop.abort();
          },
        }),
        'EDBX_ERR_CANCELLED',
      );
      expect(chunks).toHaveLength(1);
      expect((await readdir(root)).sort()).toEqual(['data']);
      // The store is untouched and a later backup goes through.
      expect((await backupStore(secure.store, target, ctx)).events).toBe(1500);
    } finally {
      await secure.store.close();
    }
  });

  it('records the backup in the audit log once it is in place, with who, where and its point (QA #5)', async () => {
    const root = await tempRoot();
    const secure = await open(path.join(root, 'data'));
    const target = path.join(root, 'backups', 'b1');
    try {
      for (let i = 0; i < 5; i++) await append(secure, 'p-1', i);
      const ops = { issuedBy: { group: 'local', user: 'ops' } };
      const report = await backupStore(secure.store, target, ops);
      const log = await auditEntries(secure.store);
      // The SDK's audit types name the action and its payload.
      const action: AuditAction = 'backup-taken';
      const taken = log.filter((e) => e.event_type === action);
      expect(taken).toHaveLength(1);
      const [entry] = taken;
      expect(entry!.metadata.issued_by).toEqual(ops.issuedBy);
      const payload: BackupTakenPayload = {
        path: target,
        taken_at: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/) as string,
        events: String(report.events),
        ledger_root: report.ledger_root,
      };
      expect(entry!.payload).toEqual(payload);
      expect(report.audit_entry).toBe(entry!.version);
      // Written after the pinned point: the store's next position, not one the copy holds.
      expect(report.events).toBe(5);
      expect(entry!.position).toBe(report.events + 1);
      expect(Date.parse(entry!.metadata.created_at)).toBeGreaterThanOrEqual(
        Date.parse(entry!.payload.taken_at!),
      );
      // The log vouches for the records beside it as before: the new action changes none of them.
      expect((await verifyAuditLog(secure.store)).ok).toBe(true);
      await secure.store.close();

      const copy = await open(target);
      try {
        expect(copy.store.ledgerHead()).toEqual({ size: report.events, root: report.ledger_root });
        expect((await auditEntries(copy.store)).map((e) => e.event_type)).toEqual([]);
      } finally {
        await copy.store.close();
      }
    } finally {
      if (secure.store.engine.status === 'open') await secure.store.close();
    }
  });

  it('records nothing for a backup refused, cancelled or that fails (QA #5)', async () => {
    const root = await tempRoot();
    const secure = await open(path.join(root, 'data'));
    try {
      await manyPatients(secure);
      const full = path.join(root, 'full');
      await mkdir(full);
      await writeFile(path.join(full, 'old'), 'x');
      await expectCode(backupStore(secure.store, full, ctx), 'EDBX_ERR_BACKUP_TARGET');
      const stop = new AbortController();
      await expectCode(
        backupStore(secure.store, path.join(root, 'b'), ctx, {
          signal: stop.signal,
          progress: () => stop.abort(),
        }),
        'EDBX_ERR_CANCELLED',
      );
      expect(await auditEntries(secure.store)).toEqual([]);
      expect((await readdir(root)).sort()).toEqual(['data', 'full']);
    } finally {
      await secure.store.close();
    }
  });

  it('refuses to back up a store that cannot record it, and removes a backup it failed to record (QA #5)', async () => {
    const root = await tempRoot();
    for (const when of ['before', 'during'] as const) {
      const engine = new MemoryEngine();
      const store = await EventStore.open({ engine, verification: { threads: 0 } });
      const target = path.join(root, when);
      try {
        for (let i = 0; i < 1500; i++)
          await store.append(
            {
              aggregate_type: 'patient',
              aggregate_id: `p-${i % 10}`,
              event_type: 'e',
              payload: { n: String(i) },
            },
            ctx,
          );
        // A write that fails makes the store refuse every further write, its audit log's included.
        const fail = () => {
          engine.faultNextWrite(new Error('disk gone'));
          return store.append(
            { aggregate_type: 'patient', aggregate_id: 'x', event_type: 'e', payload: {} },
            ctx,
          );
        };
        if (when === 'before') await expectCode(fail(), 'EDBX_ERR_STORE_IO');
        let failing: Promise<unknown> | undefined;
        const e = await expectCode(
          backupStore(store, target, ctx, {
            progress: () => void (failing ??= fail().catch(() => undefined)),
          }),
          'EDBX_ERR_BACKUP_NOT_RECORDED',
        );
        await failing;
        expect(store.writeFailure).toBeDefined();
        expect(e.message).toContain('disk gone');
        expect(e.message).toContain(`nothing was left at ${target}`);
        // Refused before copying anything, or copied, then removed: no backup without its entry.
        expect(await readdir(root)).not.toContain(when);
        expect((await readdir(root)).filter((f) => f.startsWith('.'))).toEqual([]);
      } finally {
        await store.close();
      }
    }
  });
});
