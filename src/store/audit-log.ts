/**
 * The audit log's name (`$audit/log`), and reading the log as `audit list` and GET /v1/audit serve
 * it: oldest first, optionally only the entries written since a date, from a ledger position (what
 * was committed after a backup: exact, whatever the clock did), after a version (a cursor), skipped
 * and taken.
 */
import { err } from '../core/errors.js';
import type { EventRecord } from '../core/event.js';
import { MAX_WHOLE, wholeNumber } from '../core/names.js';
import type { EventStore } from './store.js';

export const AUDIT_TYPE = '$audit';
export const AUDIT_ID = 'log';

/** An ISO 8601 date (UTC midnight), or a date and time with `Z` or an offset. */
const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2}))?$/;

/**
 * A `since` value as a time in ms, or undefined when absent. Only ISO dates that exist are read: a
 * date alone is midnight UTC, a time needs `Z` or an offset (the server's time zone must not decide).
 * Anything else is refused with EDBX_ERR_INVALID_ARGUMENT naming `name` (`--since`, or `since`).
 */
export function auditSince(raw: unknown, name: string): number | undefined {
  if (raw === undefined) return undefined;
  const text = String(raw);
  const m = ISO.exec(text);
  const since = m ? Date.parse(text) : NaN;
  const [y, mo, d, h = '0', mi = '0', sec = '0'] = (m ?? []).slice(1);
  const real =
    m !== null &&
    !Number.isNaN(since) &&
    new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d))).getUTCDate() === Number(d) &&
    Number(mo) >= 1 &&
    Number(mo) <= 12 &&
    Number(h) <= 23 &&
    Number(mi) <= 59 &&
    Number(sec) <= 59;
  if (!real) {
    throw err('EDBX_ERR_INVALID_ARGUMENT', {
      name,
      value: raw,
      reason: 'use an ISO date that exists, e.g. 2026-11-01 (midnight UTC) or 2026-11-01T10:00:00Z',
    });
  }
  return since;
}

/**
 * A `from_position` value (`--from-position`), or undefined when absent: a ledger position, a whole
 * number from 1. Anything else is refused with EDBX_ERR_INVALID_ARGUMENT naming `name`.
 */
export function auditFromPosition(raw: unknown, name: string): number | undefined {
  if (raw === undefined) return undefined;
  const n = wholeNumber(raw);
  if (n === undefined || n < 1)
    throw err('EDBX_ERR_INVALID_ARGUMENT', {
      name,
      value: raw,
      reason: `use a ledger position, a whole number from 1 to ${MAX_WHOLE} (a backup's \`events\` + 1: what was committed after it)`,
    });
  return n;
}

export interface AuditEntriesOptions {
  /** Only entries whose `created_at` is at or after this time (ms since the epoch). */
  readonly since?: number;
  /**
   * Only entries at or after this ledger position: committed after the first `fromPosition - 1`
   * events (a backup's `events`), by commit order, not by time.
   */
  readonly fromPosition?: number;
  /** Only entries after this version of the log (a page's last entry). */
  readonly after?: number;
  /** Leave out this many of the matching entries. */
  readonly skip?: number;
  /** At most this many entries (default: all). */
  readonly take?: number;
  /** Stops the read between chunks (a client that went away). */
  readonly signal?: AbortSignal | undefined;
}

/** Audit log entries, oldest first; none when the store has no audit log yet. */
export async function auditEntries(store: EventStore, o: AuditEntriesOptions = {}): Promise<EventRecord[]> {
  const live = await store.meta(AUDIT_TYPE, AUDIT_ID);
  if (!live) return [];
  const last = live.meta.version;
  const from = (o.after ?? 0) + 1;
  let skip = o.skip ?? 0;
  const range = { fromVersion: from, toVersion: last, signal: o.signal };
  const { since, fromPosition } = o;
  if (since === undefined && fromPosition === undefined)
    return store.readEvents('main', AUDIT_TYPE, AUDIT_ID, { ...range, skip, take: o.take });
  // Every entry is compared: created_at never goes back in what this build writes (store/clock.ts),
  // but a log written before may hold times out of order. The log is scanned a chunk at a time,
  // never read whole into memory.
  const kept = (e: EventRecord) =>
    (since === undefined || Date.parse(e.metadata.created_at) >= since) &&
    (fromPosition === undefined || e.position >= fromPosition);
  const want = o.take ?? Number.MAX_SAFE_INTEGER;
  const out: EventRecord[] = [];
  if (want <= 0) return out;
  for await (const chunk of store.scanEvents('main', AUDIT_TYPE, AUDIT_ID, range)) {
    for (const e of chunk) {
      if (!kept(e)) continue;
      if (skip > 0) skip--;
      else if (out.push(e) === want) return out;
    }
  }
  return out;
}
