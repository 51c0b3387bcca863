/**
 * Reading the audit log for `audit list` and GET /v1/audit (auditor QA, finding 11): the entries since
 * a date, after a version, skipped and taken, are exactly those of the whole log filtered and sliced,
 * including across the chunks a date filter scans the log in.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { EventRecord } from '../../src/core/event.js';
import { MemoryEngine } from '../../src/storage/memory/memory-engine.js';
import { auditEntries, auditFromPosition, auditSince } from '../../src/store/audit-log.js';
import { AUDIT_ID, AUDIT_TYPE, EventStore } from '../../src/store/index.js';
import { expectCode } from '../helpers/expect.js';

const jane = { issuedBy: { group: 'admin', user: 'jane' } };
const DAY = 86_400_000;
const START = Date.parse('2026-11-01T00:00:00Z');

let store: EventStore;

/** `n` audit entries, one a day from `day` days after START (the store's clock is set for each). */
async function audited(n: number, day: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    vi.setSystemTime(START + (day + i) * DAY);
    await store.exclusive([[AUDIT_TYPE, AUDIT_ID]], async (tx) => {
      store.audit(tx, jane, 'token-generated', { n: String(day + i) });
    });
  }
}

const versions = (es: readonly EventRecord[]) => es.map((e) => e.version);

beforeEach(async () => {
  vi.useFakeTimers({ toFake: ['Date'] });
  store = await EventStore.open({ engine: new MemoryEngine() });
});
afterEach(async () => {
  await store.close();
  vi.useRealTimers();
});

describe('auditEntries', () => {
  it('is empty before the first administrative action', async () => {
    expect(await auditEntries(store)).toEqual([]);
    expect(await auditEntries(store, { since: START, take: 5 })).toEqual([]);
  });

  it('serves the whole log filtered by date, after a version, skipped and taken (across scan chunks)', async () => {
    await audited(600, 0);
    const all = await store.auditLog();
    expect(versions(await auditEntries(store))).toEqual(versions(all));
    for (const since of [undefined, START, START + 300 * DAY, START + 600 * DAY])
      for (const after of [undefined, 10, 299, 600])
        for (const skip of [undefined, 3, 256])
          for (const take of [undefined, 1, 300]) {
            const expected = all
              .filter((e) => since === undefined || Date.parse(e.metadata.created_at) >= since)
              .filter((e) => e.version > (after ?? 0))
              .slice(skip ?? 0)
              .slice(0, take);
            const got = await auditEntries(store, { since, after, skip, take });
            expect(versions(got), JSON.stringify({ since, after, skip, take })).toEqual(versions(expected));
          }
  });

  it('lists with `since` an entry written while the clock was behind: its time is held, never earlier (qa-time #2)', async () => {
    await audited(3, 10);
    await audited(1, 2); // the writer's clock went back
    await audited(2, 20);
    const got = await auditEntries(store, { since: START + 5 * DAY });
    expect(got.map((e) => e.payload.n)).toEqual(['10', '11', '12', '2', '20', '21']);
    expect(got[3]!.metadata.created_at).toBe(got[2]!.metadata.created_at);
  });

  it('lists the entries from a ledger position, by commit order whatever their times (qa-time #1)', async () => {
    await audited(4, 0);
    await store.append(
      { aggregate_type: 'patient', aggregate_id: 'p-1', event_type: 'added', payload: {} },
      jane,
    );
    await audited(3, 4);
    const all = await store.auditLog();
    const from = all[4]!.position;
    expect(from).toBe(all[3]!.position + 2); // the patient's event in between
    expect(versions(await auditEntries(store, { fromPosition: from }))).toEqual([5, 6, 7]);
    expect(versions(await auditEntries(store, { fromPosition: from - 1 }))).toEqual([5, 6, 7]);
    expect(versions(await auditEntries(store, { fromPosition: from, skip: 1, take: 1 }))).toEqual([6]);
    expect(versions(await auditEntries(store, { fromPosition: from, after: 6 }))).toEqual([7]);
    expect(versions(await auditEntries(store, { fromPosition: 1, since: START + 5 * DAY }))).toEqual([6, 7]);
    expect(await auditEntries(store, { fromPosition: store.size + 1 })).toEqual([]);
  });
});

describe('auditFromPosition', () => {
  it('reads a ledger position, and refuses anything else naming the parameter', async () => {
    expect(auditFromPosition(undefined, 'from_position')).toBeUndefined();
    expect(auditFromPosition('45', 'from_position')).toBe(45);
    expect(auditFromPosition(45, '--from-position')).toBe(45);
    for (const bad of ['0', '-1', '1.5', '1e3', 'x', '', ' 4', '99999999999999999', 0]) {
      const e = await expectCode(
        () => auditFromPosition(bad, '--from-position'),
        'EDBX_ERR_INVALID_ARGUMENT',
      );
      expect(e.message).toContain('--from-position');
    }
  });
});

describe('auditSince', () => {
  it('reads an ISO date or date-time, and refuses anything else naming the parameter', async () => {
    expect(auditSince(undefined, 'since')).toBeUndefined();
    expect(auditSince('2026-11-01', 'since')).toBe(START);
    expect(auditSince('2026-11-01T10:00:00Z', 'since')).toBe(START + 10 * 3_600_000);
    await expectCode(() => auditSince('yesterday-ish', 'since'), 'EDBX_ERR_INVALID_ARGUMENT');
    expect(auditSince('2026-11-01T11:00:00+01:00', 'since')).toBe(START + 10 * 3_600_000);
    // Only ISO dates that exist; a time needs a zone (the server's own must not decide).
    for (const bad of [
      '2026-02-30',
      '2026-13-01',
      '1',
      'Nov 1 2026',
      '2026-11-01T10:00',
      '2026-11-01T24:00Z',
    ])
      await expectCode(() => auditSince(bad, 'since'), 'EDBX_ERR_INVALID_ARGUMENT');
    expect(() => auditSince('yesterday-ish', '--since')).toThrow(/--since/);
  });
});
