/**
 * Recorded times never go backwards (qa-time finding 2): a wall clock stepped back (an NTP step, a VM
 * resumed) made a later event, audit entry, revocation, snapshot or checkpoint carry an earlier time
 * than the one before it, so `audit list --since` left out what was written later. The store's clock
 * holds them at the newest time recorded until the wall clock catches up, across a reopen too, and
 * says so once per episode. On RocksDB, with the store's injectable clock (`now`).
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RocksDbEngine } from '../../src/storage/rocksdb/rocksdb-engine.js';
import { verifyAuditLog } from '../../src/store/audit-state.js';
import { currentCheckpoint } from '../../src/store/checkpoints.js';
import { CLOCK_TOLERANCE_MS, type ClockLag, HighWaterClock, clockLagMessage } from '../../src/store/clock.js';
import {
  AUDIT_ID,
  AUDIT_TYPE,
  EventStore,
  backupStore,
  takeSnapshot,
  verifyAll,
} from '../../src/store/index.js';
import { createToken, revokeToken } from '../../src/store/tokens.js';
import { tempDirs } from '../helpers/temp.js';

const jane = { issuedBy: { group: 'admin', user: 'jane' } };
const T0 = Date.parse('2026-11-28T02:26:33.234Z');
const HOUR = 3_600_000;
const keys = generateKeyPairSync('ed25519', {
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
});

/** A non-decreasing list of ISO times (they compare as strings: same format, all `Z`). */
function expectNonDecreasing(times: readonly string[], what: string): void {
  times.forEach((t, i) => {
    if (i > 0) expect(t >= times[i - 1]!, `${what}: ${times[i - 1]} then ${t}`).toBe(true);
  });
}

describe('HighWaterClock', () => {
  it('follows the wall clock, holds at the newest time while it is behind, and tells once an episode', () => {
    let wall = T0;
    const clock = new HighWaterClock(() => new Date(wall));
    const told: Array<ClockLag | undefined> = [];
    clock.onLag((lag) => told.push(lag));
    expect(clock.now().getTime()).toBe(T0);
    wall = T0 - 3 * HOUR; // stepped back
    expect(clock.now().getTime()).toBe(T0);
    expect(told).toEqual([{ behind_ms: 3 * HOUR, held_at: new Date(T0).toISOString() }]);
    wall += 1000;
    expect(clock.now().getTime()).toBe(T0);
    expect(clock.behindMs()).toBe(3 * HOUR - 1000);
    expect(told).toHaveLength(1); // once per episode
    // A listener that comes during an episode is told at once.
    const late: Array<ClockLag | undefined> = [];
    clock.onLag((lag) => late.push(lag));
    expect(late).toEqual([told[0]]);
    wall = T0 + 5; // caught up: the wall clock again
    expect(clock.now().getTime()).toBe(T0 + 5);
    expect(clock.behindMs()).toBe(0);
    expect(told).toEqual([told[0], undefined]);
    // Within the tolerance: held all the same, not reported.
    wall = T0 + 5 - CLOCK_TOLERANCE_MS;
    expect(clock.now().getTime()).toBe(T0 + 5);
    expect(told).toHaveLength(2);
    // A new episode is told again.
    wall = T0 - 24 * HOUR;
    expect(clock.now().getTime()).toBe(T0 + 5);
    expect(told).toHaveLength(3);
    expect(told[2]).toEqual({ behind_ms: 24 * HOUR + 5, held_at: new Date(T0 + 5).toISOString() });
  });

  it('is raised by times recorded (found stored, committed), never lowered', () => {
    let wall = T0;
    const clock = new HighWaterClock(() => new Date(wall));
    clock.advance(new Date(T0 + HOUR).toISOString());
    clock.advance(T0 - HOUR);
    clock.advance('not a time');
    expect(clock.now().toISOString()).toBe(new Date(T0 + HOUR).toISOString());
    expect(clock.lag?.behind_ms).toBe(HOUR);
    wall = T0 + 2 * HOUR;
    expect(clock.now().getTime()).toBe(T0 + 2 * HOUR);
    expect(clock.lag).toBeUndefined();
  });

  it('says by how much, at what time it holds, and that the times catch up', () => {
    const lag = { behind_ms: 3 * HOUR + 12_000, held_at: '2026-11-28T02:26:47.104Z' };
    expect(clockLagMessage(lag)).toBe(
      'the system clock is 3 h 0 min behind the newest time this store recorded (2026-11-28T02:26:47.104Z; ' +
        'it went back, or was ahead before): recorded times (created_at, updated_at, revoked_at, checkpoints, ' +
        'backups) are held at 2026-11-28T02:26:47.104Z until the clock catches up, so they never go backwards; ' +
        'check the time source (NTP) of this host',
    );
    expect(clockLagMessage({ ...lag, behind_ms: 600_000 })).toContain(' is 10 min 0 s behind ');
    expect(clockLagMessage({ ...lag, behind_ms: 1500 })).toContain(' is 2 s behind ');
    expect(clockLagMessage(undefined)).toContain('caught up');
  });

  it('a listener that throws fails no write: it is reported', () => {
    let wall = T0;
    const clock = new HighWaterClock(() => new Date(wall));
    const failures: unknown[] = [];
    clock.onListenerError((e) => failures.push(e));
    clock.onLag(() => {
      throw new Error('logger down');
    });
    clock.now();
    wall = T0 - HOUR;
    expect(clock.now().getTime()).toBe(T0);
    expect(failures).toEqual([new Error('logger down')]);
  });
});

describe('the store records times that never go backwards (qa-time #2)', () => {
  const tempDir = tempDirs('edbx-clock-');
  let dir: string;
  let wall: number;
  let store: EventStore;
  const open = () => EventStore.open({ engine: new RocksDbEngine(dir), now: () => new Date(wall) });
  const tick = (id: string, n: number) => ({
    aggregate_type: 'acct',
    aggregate_id: id,
    event_type: 'deposit',
    payload: { amt: String(n) },
  });

  beforeEach(async () => {
    dir = await tempDir();
    wall = T0;
    store = await open();
  });
  afterEach(() => store.close());

  it('events, aggregates, audit entries, revocations, snapshots, checkpoints and backups, across a reopen', async () => {
    const lags: Array<ClockLag | undefined> = [];
    store.clock.onLag((lag) => lags.push(lag));
    const signer = { store, signingKeyPem: keys.privateKey, publicKeyPem: keys.publicKey };
    const first = await store.append(tick('a1', 100), jane);
    const { token } = await createToken(store, { group: 'fin', user: 'leaver' }, jane);
    wall += 14_000;
    const saved = await currentCheckpoint(signer);
    const before = saved.timestamp;

    wall -= 3 * HOUR; // the server's clock steps back 3 h
    const second = await store.append(tick('a1', 30), jane);
    expect(second.metadata.created_at).toBe(before);
    const agg = await store.aggregate('acct', 'a1');
    expect(agg.updated_at >= agg.created_at).toBe(true);
    expect(agg.updated_at).toBe(second.metadata.created_at);
    const revoked = await revokeToken(store, token, jane);
    expect(revoked.revoked_at! >= before).toBe(true);
    const snap = await takeSnapshot(store, 'acct', 'a1', jane, 'after the step');
    expect(snap.created_at >= before).toBe(true);
    const later = await currentCheckpoint(signer);
    expect(later.timestamp >= saved.timestamp).toBe(true);
    const backup = await backupStore(store, path.join(await tempDir(), 'bk'), jane);
    const marker = JSON.parse(await readFile(path.join(backup.path, 'backup.json'), 'utf8'));
    expect(marker.taken_at >= before).toBe(true);
    // Told once, with by how much and the time held at.
    expect(lags).toEqual([{ behind_ms: 3 * HOUR, held_at: before }]);

    // Reopened with the clock still behind (a restart, or a CLI opening the store directly).
    await store.close();
    wall += 1000;
    store = await open();
    const reopenedLags: Array<ClockLag | undefined> = [];
    store.clock.onLag((lag) => reopenedLags.push(lag));
    expect(reopenedLags).toHaveLength(1);
    expect(reopenedLags[0]!.behind_ms).toBeGreaterThan(3 * HOUR - 2000);
    const third = await store.append(tick('a1', 5), jane);
    const fourth = await store.append(tick('a2', 1), jane);

    // The wall clock catches up: times follow it again.
    wall = T0 + HOUR;
    const fifth = await store.append(tick('a2', 2), jane);
    expect(fifth.metadata.created_at).toBe(new Date(T0 + HOUR).toISOString());
    expect(reopenedLags.at(-1)).toBeUndefined();

    const log = await store.readLog(1, 1000);
    expect(log.map((e) => e.position)).toEqual(log.map((_, i) => i + 1));
    expectNonDecreasing(
      log.map((e) => e.metadata.created_at),
      'the log',
    );
    expectNonDecreasing(
      (await store.auditLog()).map((e) => e.metadata.created_at),
      'the audit log',
    );
    expect(third.metadata.created_at >= marker.taken_at).toBe(true);
    expect(fourth.metadata.created_at >= third.metadata.created_at).toBe(true);
    expect(first.metadata.created_at < fifth.metadata.created_at).toBe(true);
    // Nothing about the history changed: everything verifies.
    const all = await verifyAll(store);
    expect(all.ok, JSON.stringify(all.failures)).toBe(true);
    expect((await verifyAuditLog(store)).ok).toBe(true);
    expect((await store.auditLog()).at(-1)!.aggregate_type).toBe(AUDIT_TYPE);
    expect((await store.meta(AUDIT_TYPE, AUDIT_ID))!.meta.updated_at >= before).toBe(true);
  });

  it('a store reopened with a clock far behind its times records at the newest stored time', async () => {
    wall = T0 + 24 * HOUR; // written while the clock was a day ahead (or the data dir came from such a host)
    const ahead = await store.append(tick('a1', 1), jane);
    await store.close();
    wall = T0;
    store = await open();
    expect(store.clock.lag).toEqual({ behind_ms: 24 * HOUR, held_at: ahead.metadata.created_at });
    const next = await store.append(tick('a1', 2), jane);
    expect(next.metadata.created_at).toBe(ahead.metadata.created_at);
    const bob = await createToken(store, { group: 'fin', user: 'bob', expiration: 60 }, jane);
    expect(bob.created_at).toBe(ahead.metadata.created_at);
    // Expiry is judged by the same clock: the token lasts its 60 s from the time it was recorded.
    expect(bob.expires_at).toBe(new Date(Date.parse(ahead.metadata.created_at) + 60_000).toISOString());
    expect(bob.status).toBe('active');
    expect((await verifyAll(store)).ok).toBe(true);
  });
});
