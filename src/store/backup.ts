/**
 * Online, consistent backups. Copying the files of a running RocksDB gives an inconsistent copy, and
 * the binding has no checkpoint or backup API, so a backup reads every key instead: both keyspaces are
 * pinned (engine.pin) inside one exclusive writer job, so no commit lands between the two pins and
 * writers stall only for that moment; the pinned reads are then streamed out while writes go on.
 *
 * The copy is a new RocksDB database (the engine's own options) plus `keyring.json`, written in a
 * temporary sibling of the target, reopened and checked against the pinned point (entries per
 * keyspace, ledger size and root), fsync'd, and only then renamed into place: a crash, a failure or a
 * cancellation never leaves at the target something that looks like a complete backup, and a failed
 * or cancelled backup removes its temporary directory (one a crash left is removed by the next backup
 * into the same directory: backup-temp.ts). `backup.json` in it says when it was taken, what it held,
 * where it was written, the fingerprints of the keys it needs and its database files: a server
 * started on it after a restore records the restore (restored.ts). Never copied: the config file, the
 * keys, the PID file, the control socket, the log (they are not in the store).
 *
 * A backup is a read of everything, so each one is recorded in the audit log (`backup-taken`: who,
 * where, and the pinned point's time, events and ledger root), in its own commit once the backup is
 * complete and renamed into place. So the copy never holds its own entry (it holds the store as of the
 * pin), and a failed or cancelled backup records nothing: nothing was left at the target. A backup is
 * never left without its entry: a store that cannot append to its audit log (writes refused, the log
 * cut short) refuses the backup before copying, and one that fails to record it after the rename
 * removes the backup again (EDBX_ERR_BACKUP_NOT_RECORDED). Only a crash between the rename and that
 * commit leaves a backup without an entry (the server's log still has `backup started`).
 */
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { type EventDbxError, err, isEventDbxError, throwIfAborted, toEventDbxError } from '../core/errors.js';
import type { EventRecord } from '../core/event.js';
import { decodeFrontier, emptyFrontier, frontierRoot } from '../core/merkle/index.js';
import { type PinnedRead, SPACES, type Space, type StorageEngine } from '../storage/engine.js';
import { createEngine } from '../storage/index.js';
import { writeNewFile } from '../fs/no-follow.js';
import { globalKey } from './keys.js';
import { frontierBytes } from './ledger-head.js';
import { removeStaleTemps, tempDirFor } from './backup-temp.js';
import { KEYRING_COPY } from './keyring-copy.js';
import { databaseFiles } from './restore-files.js';
import { type BackupKeys, writeBackupMarker } from './restored.js';
import { AUDIT_ID, AUDIT_TYPE, type EventStore } from './store.js';
import type { WriteContext } from './types.js';
import { makeDir } from '../fs/make-dir.js';

/** The audit log's entry for a backup written (its payload: BackupTakenPayload in the protocol). */
export const BACKUP_TAKEN = 'backup-taken';

export interface BackupOptions {
  /** Stops the backup between chunks (EDBX_ERR_CANCELLED, or the signal's coded reason). */
  readonly signal?: AbortSignal | undefined;
  /** Entries copied so far and an estimate of all of them (at least the count so far). */
  readonly progress?: ((done: number, total: number) => void) | undefined;
  /** The data dir: a target inside it is refused (it would be copied into the next backup, and `destroy` removes it). */
  readonly dataDir?: string | undefined;
  /** The fingerprints of the keys in force (SecureStore.keyFingerprints), for `backup.json`. */
  readonly keys?: BackupKeys | undefined;
}

/** What a backup wrote, as of its pinned point. */
export interface BackupReport {
  readonly path: string;
  /** Events in the copy: the ledger size at the pinned point. */
  readonly events: number;
  /** Ledger root (hex) at the pinned point. */
  readonly ledger_root: string;
  /** The copy's storage layout (the store's; also in `backup.json`). */
  readonly layout: number;
  readonly entries: Readonly<Record<Space, number>>;
  /** Bytes on disk of the backup directory. */
  readonly bytes: number;
  readonly seconds: number;
  /** The version of its `backup-taken` entry in the audit log. */
  readonly audit_entry: number;
  /** The fingerprints of the keys a restore of it needs (as in `backup.json`), when known. */
  readonly keys?: BackupKeys;
  /** Temporary directories of earlier backups, ended by a crash, that this one removed. */
  readonly removed_temp_dirs: readonly string[];
}

const KEYRING = globalKey('keyring');
const LEDGER = globalKey('ledger');

/**
 * Back up the store into `target` (a directory that does not exist yet, or an empty one), and record
 * it in the audit log as done by `ctx.issuedBy`.
 *
 * @example
 * const report = await backupStore(secure.store, '/backups/eventdbx-2024-06-01', {
 *   issuedBy: { group: 'local', user: 'ops' },
 * });
 * // { path, events: 1200, ledger_root: 'ab…', layout: 2, entries: { main: 3605, archive: 0 }, bytes,
 * //   seconds, audit_entry: 17 }
 */
export async function backupStore(
  store: EventStore,
  target: string,
  ctx: WriteContext,
  options: BackupOptions = {},
): Promise<BackupReport> {
  const started = performance.now();
  const { signal } = options;
  const dest = path.resolve(target);
  // Checked first: a caller passing the options third (as before backups were audited) would otherwise
  // copy everything, then fail to record who did.
  const by = (ctx as Partial<WriteContext> | undefined)?.issuedBy;
  if (typeof by?.group !== 'string' || typeof by.user !== 'string')
    throw err('EDBX_ERR_INVALID_ARGUMENT', {
      name: 'ctx',
      value: ctx,
      reason: 'say who takes the backup: { issuedBy: { group, user } } (the audit log records it)',
    });
  await checkTarget(dest, options.dataDir);
  // Not a whole copy first, only to find that it cannot be recorded.
  const refused = store.writeFailure ?? store.auditProblem;
  if (refused) throw notRecorded(refused, dest);
  throwIfAborted(signal);
  const parent = path.dirname(dest);
  const removedTemps = await removeStaleTemps(parent);
  const tmp = tempDirFor(dest);
  try {
    makeDir(parent, 0o700);
    await mkdir(tmp, { mode: 0o700 });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw err('EDBX_ERR_BACKUP_TARGET', {
      path: dest,
      reason: `cannot create a directory in ${parent} (${code}); name a place this user can write`,
    });
  }
  let pins: Map<Space, PinnedRead> | undefined;
  try {
    const engine = store.engine;
    const estimate = estimatedEntries(engine);
    const pinned = await store.atRest(() => ({
      pins: pinAll(engine),
      head: store.ledgerHead(),
      at: store.env.now().toISOString(),
    }));
    pins = pinned.pins;
    const { head } = pinned;
    const copied = await copyInto(tmp, dest, pins, estimate, options);
    const keyring = copied.keyring;
    if (keyring !== undefined)
      await atTarget(dest, () => writeNewFile(path.join(tmp, KEYRING_COPY), keyring));
    throwIfAborted(signal);
    await atTarget(dest, () => checkCopy(tmp, copied.entries, head));
    // Names it as a backup: a server started on it after a restore records the restore (restored.ts).
    const files = await atTarget(dest, () => databaseFiles(tmp));
    await atTarget(dest, () =>
      writeBackupMarker(tmp, {
        taken_at: pinned.at,
        events: head.size,
        ledger_root: head.root,
        layout: store.layout,
        path: dest,
        ...(options.keys ? { keys: options.keys } : {}),
        files,
      }),
    );
    const bytes = await atTarget(dest, () => syncTree(tmp));
    // The last moment a cancellation is heard: after the rename the backup is complete.
    throwIfAborted(signal);
    try {
      await rename(tmp, dest);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOTDIR')
        throw err('EDBX_ERR_BACKUP_TARGET', {
          path: dest,
          reason: 'something was written there meanwhile; name another directory',
        });
      throw e;
    }
    await syncDir(parent);
    const entry = await recordBackup(store, ctx, dest, pinned.at, head);
    return {
      path: dest,
      events: head.size,
      ledger_root: head.root,
      layout: store.layout,
      entries: copied.entries,
      bytes,
      seconds: Math.round(performance.now() - started) / 1000,
      audit_entry: entry.version,
      ...(options.keys ? { keys: options.keys } : {}),
      removed_temp_dirs: removedTemps,
    };
  } catch (e) {
    await Promise.all([...(pins?.values() ?? [])].map((p) => p.close().catch(() => undefined)));
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/**
 * The backup's `backup-taken` entry, in a commit of its own after the backup is in place (so the copy,
 * pinned earlier, never holds it). A backup whose entry cannot be written is removed again.
 */
async function recordBackup(
  store: EventStore,
  ctx: WriteContext,
  dest: string,
  takenAt: string,
  head: { size: number; root: string },
): Promise<EventRecord> {
  const details = { path: dest, taken_at: takenAt, events: String(head.size), ledger_root: head.root };
  try {
    return await store.exclusive([[AUDIT_TYPE, AUDIT_ID]], async (tx) =>
      store.audit(tx, ctx, BACKUP_TAKEN, details),
    );
  } catch (e) {
    await rm(dest, { recursive: true, force: true });
    await syncDir(path.dirname(dest)).catch(() => undefined);
    throw notRecorded(toEventDbxError(e), dest);
  }
}

const notRecorded = (cause: EventDbxError, dest: string): EventDbxError =>
  err('EDBX_ERR_BACKUP_NOT_RECORDED', { cause: cause.code, reason: cause.message, path: dest }, cause);

/** Only a new directory, or an empty one, outside the data dir. */
async function checkTarget(dest: string, dataDir: string | undefined): Promise<void> {
  if (dataDir !== undefined) {
    const rel = path.relative(path.resolve(dataDir), dest);
    if (rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel)))
      throw err('EDBX_ERR_BACKUP_TARGET', {
        path: dest,
        reason: 'it is in the data dir; name a directory outside it',
      });
  }
  let isDir: boolean;
  try {
    isDir = (await stat(dest)).isDirectory();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err('EDBX_ERR_BACKUP_TARGET', { path: dest, reason: `${(e as Error).message}` });
  }
  if (!isDir)
    throw err('EDBX_ERR_BACKUP_TARGET', {
      path: dest,
      reason: 'a file is there; name a directory that does not exist yet (or an empty one)',
    });
  if ((await readdir(dest)).length > 0)
    throw err('EDBX_ERR_BACKUP_TARGET', {
      path: dest,
      reason: 'the directory is not empty; name one that does not exist yet (or an empty one)',
    });
}

/** Both keyspaces pinned one after the other, with nothing awaited between (see EventStore.atRest). */
function pinAll(engine: StorageEngine): Map<Space, PinnedRead> {
  const pins = new Map<Space, PinnedRead>();
  try {
    for (const space of SPACES) pins.set(space, engine.pin(space));
  } catch (e) {
    for (const p of pins.values()) void p.close().catch(() => undefined);
    throw e;
  }
  return pins;
}

/** The engine's own count estimate, for the progress bar only. */
function estimatedEntries(engine: StorageEngine): number {
  const stats = engine.stats();
  const n = (k: string): number => (typeof stats[k] === 'number' ? stats[k] : 0);
  return n('main.keys_estimate') + n('keys.main') + n('keys.archive');
}

/**
 * Streams the pinned reads into a new RocksDB database at `dir`, a chunk per batch. A failure to write
 * the copy is the target's (EDBX_ERR_BACKUP_WRITE, see atTarget); a failure to read the pins is the
 * store's, and stays as it is. The first failure is the one reported: once a write failed, RocksDB
 * answers the close with `IO error: Seen error. Skip writing buffer.`, which says nothing (DR QA #4).
 */
async function copyInto(
  dir: string,
  dest: string,
  pins: ReadonlyMap<Space, PinnedRead>,
  estimate: number,
  { signal, progress }: BackupOptions,
): Promise<{ entries: Record<Space, number>; keyring: Buffer | undefined }> {
  const copy = createEngine('rocksdb', dir);
  await atTarget(dest, () => copy.open());
  const entries: Record<Space, number> = { main: 0, archive: 0 };
  let keyring: Buffer | undefined;
  let failed = false;
  try {
    for (const [space, pin] of pins) {
      for await (const chunk of pin.chunks(signal)) {
        if (space === 'main' && keyring === undefined)
          keyring = chunk.find(([key]) => key.equals(KEYRING))?.[1];
        // Unsynced: the whole copy is fsync'd once it is complete (syncTree), before the rename.
        await atTarget(dest, () =>
          copy.write(
            chunk.map(([key, value]) => ({ type: 'put', space, key, value })),
            { sync: false },
          ),
        );
        entries[space] += chunk.length;
        const done = entries.main + entries.archive;
        progress?.(done, Math.max(done, estimate));
      }
    }
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    // The close releases the copy's files even when it reports an error.
    const closing = atTarget(dest, () => copy.close());
    await (failed ? closing.catch(() => undefined) : closing);
  }
  return { entries, keyring };
}

/** The errno texts RocksDB and Node give, with what the message says of each and what to do. */
const TARGET_CAUSES: ReadonlyArray<readonly [RegExp, string, string, string]> = [
  [
    /\bENOSPC\b|No space left on device/i,
    'ENOSPC',
    'no space left on device',
    'free space there or choose another target',
  ],
  [
    /\bEDQUOT\b|Disk quota exceeded/i,
    'EDQUOT',
    'disk quota exceeded',
    'free space there or choose another target',
  ],
  [/\bEROFS\b|Read-only file system/i, 'EROFS', 'a read-only file system', 'choose a writable target'],
  [
    /\bEACCES\b|\bEPERM\b|Permission denied|Operation not permitted/i,
    'EACCES',
    'permission denied',
    'choose a target this user can write',
  ],
  [
    /\bEFBIG\b|File too large/i,
    'EFBIG',
    'a file over its size limit',
    'raise the limit or choose another target',
  ],
  [
    /\bEIO\b|Input\/output error/i,
    'EIO',
    'an I/O error (a failing disk?)',
    'check that disk or choose another target',
  ],
];

/**
 * Run a step that writes (or reads back) the copy at the target `dest`: an I/O failure of it is
 * EDBX_ERR_BACKUP_WRITE, naming the target, the cause and what to do; the store is not concerned.
 * Coded errors other than the engine's I/O errors (a cancellation, a failed check) pass as they are.
 */
async function atTarget<T>(dest: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (e) {
    const io = ['EDBX_ERR_STORE_IO', 'EDBX_ERR_DATA_DIR_NOT_WRITABLE', 'EDBX_ERR_DATA_FILE_ACCESS'];
    if (isEventDbxError(e) && !io.includes(e.code)) throw e;
    const texts: string[] = [];
    for (let c: unknown = e; c instanceof Error && texts.length < 8; c = c.cause)
      texts.push(`${(c as NodeJS.ErrnoException).code ?? ''} ${c.message}`);
    const text = texts.join('\n');
    const known = TARGET_CAUSES.find(([pattern]) => pattern.test(text));
    const cause = known ? `${known[2]} (${known[1]})` : (texts.at(-1)?.trim().split('\n')[0] ?? String(e));
    const fix = known?.[3] ?? 'choose another target';
    throw err('EDBX_ERR_BACKUP_WRITE', { path: dest, cause, fix }, e);
  }
}

/** Reopens the copy: its entries per keyspace and its ledger must be the pinned point's. */
async function checkCopy(
  dir: string,
  entries: Readonly<Record<Space, number>>,
  head: { size: number; root: string },
): Promise<void> {
  const copy = createEngine('rocksdb', dir);
  await copy.open();
  try {
    for (const space of SPACES) {
      let n = 0;
      for await (const keys of copy.keyChunks(space)) n += keys.length;
      if (n !== entries[space])
        throw err('EDBX_ERR_BACKUP_CHECK_FAILED', {
          reason: `${space} keyspace: ${n} entries in the copy, ${entries[space]} read from the store`,
        });
    }
    const raw = await copy.get('main', LEDGER);
    // The head's frontier (its sealed audit trailer follows, see ledger-head.ts).
    const ledger = raw ? decodeFrontier(raw.subarray(0, frontierBytes(raw))) : emptyFrontier;
    const root = frontierRoot(ledger).toString('hex');
    if (ledger.size !== head.size || root !== head.root)
      throw err('EDBX_ERR_BACKUP_CHECK_FAILED', {
        reason: `the copy's ledger is ${ledger.size} events (root ${root}), the store's was ${head.size} (root ${head.root})`,
      });
  } finally {
    await copy.close();
  }
}

/** fsync every file and directory under `dir` (and `dir`); answers the bytes of its files. */
async function syncTree(dir: string): Promise<number> {
  let bytes = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) bytes += await syncTree(p);
    else if (entry.isFile()) {
      const fh = await open(p, 'r');
      try {
        await fh.sync();
        bytes += (await fh.stat()).size;
      } finally {
        await fh.close();
      }
    }
  }
  await syncDir(dir);
  return bytes;
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
