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
 * removed, is not noticed; what proves a rollback is a signed checkpoint kept outside the store.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { err } from '../core/errors.js';
import type { IssuedBy } from '../core/event.js';
import { readNoFollow, writeNewFile } from '../fs/no-follow.js';
import { auditEntries } from './audit-log.js';
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
}

/** Write the marker into a backup being made (owner-only, like the rest of it). */
export async function writeBackupMarker(dir: string, marker: BackupMarker): Promise<void> {
  await writeNewFile(path.join(dir, BACKUP_MARKER), JSON.stringify(marker) + '\n');
}

async function readMarker(dataDir: string): Promise<BackupMarker | undefined> {
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
  };
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
  const details = {
    backup_taken_at: marker.taken_at,
    backup_events: String(marker.events),
    backup_ledger_root: marker.ledger_root,
  };
  const since = Date.parse(marker.taken_at);
  const recorded = (await auditEntries(store, Number.isNaN(since) ? {} : { since })).some(
    (e) =>
      e.event_type === RESTORED_ACTION &&
      e.payload.backup_taken_at === details.backup_taken_at &&
      e.payload.backup_ledger_root === details.backup_ledger_root,
  );
  if (!recorded) {
    await store.exclusive([[AUDIT_TYPE, AUDIT_ID]], async (tx) => {
      store.audit(tx, { issuedBy: by }, RESTORED_ACTION, details);
    });
  }
  await rm(path.join(dataDir, BACKUP_MARKER), { force: true });
  return marker;
}
