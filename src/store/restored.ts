/**
 * A backup names itself: `backup.json` in its directory says when it was taken and what it held. A
 * data dir that has one is a backup put in place of a store, a restore: the store's history is back
 * at that point, and with it everything administrative done since (a token revoked after the backup
 * is active again, a schema change or a plugin removal is undone).
 *
 * The first server started on it records the restore in the Merkle-protected audit log (who started
 * it, when, and which backup), warns in its log what a restore undoes, and only then removes the file.
 * A crash between the two finds the entry on the next start and does not record it twice (the
 * restored log cannot hold an entry for this backup written before the backup). Commands run on the
 * data dir without a server leave the file alone: a backup opened to be inspected stays a backup.
 *
 * Best effort: the marker is only a file. A plain copy of an old data dir, or a backup whose marker was
 * removed, is not noticed; what proves a rollback is a signed checkpoint kept outside the store. What
 * it says is checked before it is recorded (QA disaster-recovery finding 10): its events and ledger
 * root must be the store's, at that size, or the start is refused and nothing recorded.
 */
import { realpathSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { err } from '../core/errors.js';
import type { IssuedBy } from '../core/event.js';
import { emptyFrontier, frontierRoot } from '../core/merkle/index.js';
import { readNoFollow, writeNewFile } from '../fs/no-follow.js';
import { auditEntries } from './audit-log.js';
import { ledgerConsistencyProof } from './proofs.js';
import { AUDIT_ID, AUDIT_TYPE, type EventStore } from './store.js';

export const BACKUP_MARKER = 'backup.json';
export const RESTORED_ACTION = 'store-restored';

/** What `backup.json` says. */
export interface BackupMarker {
  /** When the backup's point was pinned (ISO time). */
  readonly taken_at: string;
  /** Events in the backup: the ledger size at that point. */
  readonly events: number;
  /** The ledger root at that point (hex). */
  readonly ledger_root: string;
  /**
   * The storage layout of the copy (the store's): a backup restores only into a build that reads it.
   * Absent from backups taken before it was recorded (they hold layout 2).
   */
  readonly layout?: number;
  /**
   * Where the backup was written (the target, resolved): a server started on that very directory
   * would turn the backup itself into a live store (`start` refuses it without --consume-backup).
   * Absent from backups taken before it was recorded.
   */
  readonly path?: string;
  /** The keys it opens with, by their fingerprints (never the keys). Absent from older backups. */
  readonly keys?: BackupKeys;
  /**
   * The database's files and their sizes, as the backup wrote them: a restored copy holding others
   * mixes two stores (restore-files.ts). Absent from older backups.
   */
  readonly files?: Readonly<Record<string, number>>;
}

/**
 * The keys a backup opens with: those in force when it was taken (core/crypto/fingerprint.ts). A
 * backup taken before a key rotation needs the keys from before it.
 */
export interface BackupKeys {
  /** The master key its keyring is wrapped under. */
  readonly master_key: string;
  /** The DEK that was active (its data key seals what the backup holds last), and its key id. */
  readonly dek: string;
  readonly dek_id: number;
}

const isBackupKeys = (v: unknown): v is BackupKeys => {
  const k = v as Partial<BackupKeys> | null;
  return (
    typeof k === 'object' &&
    k !== null &&
    typeof k.master_key === 'string' &&
    typeof k.dek === 'string' &&
    Number.isSafeInteger(k.dek_id)
  );
};

const isFileSizes = (v: unknown): v is Record<string, number> =>
  typeof v === 'object' &&
  v !== null &&
  !Array.isArray(v) &&
  Object.values(v).every((n) => Number.isSafeInteger(n) && (n as number) >= 0);

/** Write the marker into a backup being made (owner-only, like the rest of it). */
export async function writeBackupMarker(dir: string, marker: BackupMarker): Promise<void> {
  await writeNewFile(path.join(dir, BACKUP_MARKER), JSON.stringify(marker) + '\n');
}

/** What `backup.json` in `dataDir` says; undefined when there is none, EDBX_ERR_INTEGRITY when garbled. */
export async function readMarker(dataDir: string): Promise<BackupMarker | undefined> {
  let raw: string;
  try {
    raw = await readNoFollow(path.join(dataDir, BACKUP_MARKER));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let m: Partial<BackupMarker> | undefined;
  try {
    const parsed: unknown = JSON.parse(raw);
    if (typeof parsed === 'object' && parsed !== null) m = parsed as Partial<BackupMarker>;
  } catch {
    // refused below
  }
  if (!m)
    throw err('EDBX_ERR_INTEGRITY', {
      where: path.join(dataDir, BACKUP_MARKER),
      reason:
        'it is not the JSON a backup writes; copy it again from the backup this data dir was restored from, or remove it if this data dir is not a restored backup',
    });
  return {
    taken_at: String(m.taken_at ?? ''),
    events: Number(m.events ?? 0),
    ledger_root: String(m.ledger_root ?? ''),
    ...(typeof m.layout === 'number' ? { layout: m.layout } : {}),
    ...(typeof m.path === 'string' ? { path: m.path } : {}),
    ...(isBackupKeys(m.keys) ? { keys: m.keys } : {}),
    ...(isFileSizes(m.files) ? { files: m.files } : {}),
  };
}

/**
 * Why what `marker` says is not what the store holds, or undefined when it is: the ledger at the
 * backup's size must have the backup's root (the store may have grown since, by commands run on the
 * restored data dir before its first server).
 */
async function markerProblem(store: EventStore, marker: BackupMarker): Promise<string | undefined> {
  const { events } = marker;
  const head = store.ledgerHead();
  if (!Number.isSafeInteger(events) || events < 0)
    return `its events (${String(events)}) is not a count of events`;
  if (events > head.size)
    return `it says the backup holds ${events} events, but this store holds ${head.size}`;
  const root =
    events === head.size
      ? head.root
      : events === 0
        ? frontierRoot(emptyFrontier).toString('hex')
        : (await ledgerConsistencyProof(store, events, head.size)).first_root;
  if (root !== marker.ledger_root)
    return `it says the backup's ledger root at ${events} events is ${marker.ledger_root}, but this store's is ${root}`;
  return undefined;
}

/**
 * Refuse to start a server on a backup's own directory (QA disaster-recovery finding 6): the server
 * would make it a live store, and the backup would be gone. A copy (`cp -a`) of it elsewhere is a
 * restore. Told by the path `backup.json` records (backups of earlier versions record none: not told).
 * Throws EDBX_ERR_BACKUP_IN_PLACE unless `consume` (`start --consume-backup`).
 */
export async function refuseBackupInPlace(dataDir: string, consume: boolean): Promise<void> {
  if (consume) return;
  let marker: BackupMarker | undefined;
  try {
    marker = await readMarker(dataDir);
  } catch {
    return; // a garbled marker: the start names it
  }
  if (marker?.path === undefined) return;
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return path.resolve(p);
    }
  };
  if (path.resolve(marker.path) !== path.resolve(dataDir) && real(marker.path) !== real(dataDir)) return;
  throw err('EDBX_ERR_BACKUP_IN_PLACE', { path: dataDir, taken_at: marker.taken_at });
}

/**
 * When `dataDir` is a restored backup: record the restore in the audit log (once), remove the marker
 * and answer what it said. Undefined for a data dir that is not one.
 */
export async function recordRestore(
  store: EventStore,
  dataDir: string,
  by: IssuedBy,
): Promise<BackupMarker | undefined> {
  const marker = await readMarker(dataDir);
  if (!marker) return undefined;
  // Never recorded as a fact unless the store bears it out: an edited file, one copied from another
  // backup, or a data dir that mixes two stores.
  const problem = await markerProblem(store, marker);
  if (problem !== undefined)
    throw err('EDBX_ERR_INTEGRITY', {
      where: path.join(dataDir, BACKUP_MARKER),
      reason: `${problem}: it is not the backup.json of this copy (edited, or copied from another backup), or the data dir mixes two stores; nothing was recorded: copy the backup again into an empty directory, or, if this data dir is not a restored backup, remove backup.json (the restore is then not recorded)`,
    });
  const details = {
    backup_taken_at: marker.taken_at,
    backup_events: String(marker.events),
    backup_ledger_root: marker.ledger_root,
  };
  // Looked for by commit order: what the backup holds ends at its `events` (checked above).
  const recorded = (await auditEntries(store, { fromPosition: marker.events + 1 })).some(
    (e) =>
      e.event_type === RESTORED_ACTION &&
      e.payload.backup_taken_at === details.backup_taken_at &&
      e.payload.backup_ledger_root === details.backup_ledger_root,
  );
  if (!recorded) {
    // The restore comes after the backup, whatever the clock of this host says (store/clock.ts).
    store.clock.advance(marker.taken_at);
    await store.exclusive([[AUDIT_TYPE, AUDIT_ID]], async (tx) => {
      store.audit(tx, { issuedBy: by }, RESTORED_ACTION, details);
    });
  }
  await rm(path.join(dataDir, BACKUP_MARKER), { force: true });
  return marker;
}
