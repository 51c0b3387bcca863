/**
 * Reading the audit log (`$audit/log`) as `audit list` and GET /v1/audit serve it: oldest first,
 * optionally only the entries written since a date, after a version (a cursor), skipped and taken.
 */
import { err } from '../core/errors.js';
import type { EventRecord } from '../core/event.js';
import { AUDIT_ID, AUDIT_TYPE, type EventStore } from './store.js';

/** Entries read at a time while filtering by date: the log is scanned, never read whole into memory. */
const CHUNK = 256;

/**
 * A `since` value as a time in ms, or undefined when absent. Anything `Date.parse` does not read is
 * refused with EDBX_ERR_INVALID_ARGUMENT naming `name` (`--since` on the CLI, `since` over HTTP).
 */
export function auditSince(raw: unknown, name: string): number | undefined {
  if (raw === undefined) return undefined;
  const since = Date.parse(String(raw));
  if (Number.isNaN(since)) {
    throw err('EDBX_ERR_INVALID_ARGUMENT', {
      name,
      value: raw,
      reason: 'use an ISO date, e.g. 2026-11-01 or 2026-11-01T10:00:00Z',
    });
  }
  return since;
}

export interface AuditEntriesOptions {
  /** Only entries whose `created_at` is at or after this time (ms since the epoch). */
  readonly since?: number;
  /** Only entries after this version of the log (a page's last entry). */
  readonly after?: number;
  /** Leave out this many of the matching entries. */
  readonly skip?: number;
  /** At most this many entries (default: all). */
  readonly take?: number;
}

/** Audit log entries, oldest first; none when the store has no audit log yet. */
export async function auditEntries(store: EventStore, o: AuditEntriesOptions = {}): Promise<EventRecord[]> {
  const live = await store.meta(AUDIT_TYPE, AUDIT_ID);
  if (!live) return [];
  const last = live.meta.version;
  let from = (o.after ?? 0) + 1;
  let skip = o.skip ?? 0;
  const read = (opts: { fromVersion: number; toVersion: number; skip?: number; take?: number }) =>
    store.readEvents('main', AUDIT_TYPE, AUDIT_ID, opts);
  if (o.since === undefined) return read({ fromVersion: from, toVersion: last, skip, take: o.take });
  // created_at is the writer's clock, not an order: every entry is compared, as `audit list` always did.
  const want = o.take ?? Number.MAX_SAFE_INTEGER;
  const out: EventRecord[] = [];
  while (from <= last && out.length < want) {
    const to = Math.min(last, from + CHUNK - 1);
    for (const e of await read({ fromVersion: from, toVersion: to })) {
      if (Date.parse(e.metadata.created_at) < o.since) continue;
      if (skip > 0) skip--;
      else if (out.push(e) === want) break;
    }
    from = to + 1;
  }
  return out;
}
