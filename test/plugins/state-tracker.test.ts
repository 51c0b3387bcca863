/**
 * The state plugins' tracker (QA-scale findings 2 and 4). It cached the rows of 10,000 aggregates by
 * count: a backlog interleaving more aggregates than that missed on every event, and each miss
 * rebuilt the state from the store by folding every earlier event (11,000 containers x 20 events:
 * ten times slower than 5,000 x 44, and slowing). And a count bounds no memory when states are large.
 * Now its budget is in estimated bytes: many small states fit, large ones cannot exceed it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { EventRecord } from '../../src/core/event.js';
import { StateTracker } from '../../src/plugins/state.js';
import type { AppendRequest, EventStore } from '../../src/store/index.js';
import { jane, openStore, userEvents } from './fixtures.js';

const stores: EventStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

/** `aggregates` reefers reporting `rounds` times each, round-robin: what the log of many looks like. */
async function interleaved(
  aggregates: number,
  rounds: number,
  payload: (r: number) => Record<string, string> = (r) => ({ round: `${r}` }),
) {
  const store = await openStore();
  stores.push(store);
  for (let r = 1; r <= rounds; r++) {
    for (let a = 0; a < aggregates; a += 1_000) {
      const reqs: AppendRequest[] = [];
      for (let i = a; i < Math.min(aggregates, a + 1_000); i++)
        reqs.push({
          aggregate_type: 'reefer',
          aggregate_id: `r-${i}`,
          event_type: 'reading',
          payload: payload(r),
        });
      await store.appendMany(reqs, jane);
    }
  }
  return store;
}

/** The store, counting the state rebuilds (`aggregate` at a version) asked of it. */
function countingRebuilds(store: EventStore): { store: EventStore; rebuilds: () => number } {
  let rebuilds = 0;
  const wrapped = new Proxy(store, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target) as unknown;
      if (typeof v !== 'function') return v;
      if (prop === 'aggregate')
        return (...args: Parameters<EventStore['aggregate']>) => {
          rebuilds++;
          return target.aggregate(...args);
        };
      return (v as (...a: unknown[]) => unknown).bind(target);
    },
  });
  return { store: wrapped, rebuilds: () => rebuilds };
}

describe('state plugins catch up an interleaved backlog in linear time (QA-scale 2)', () => {
  it('a default tracker keeps the rows of 10,050 interleaved aggregates: no state is rebuilt', async () => {
    // The log of 10,050 reefers reporting three times each, round-robin, as delivery walks it.
    // Appending 30,150 events would take this test most of a minute; the tracker needs only the
    // records: every state comes from the cache or the store would be asked (and counted).
    const store = await openStore();
    stores.push(store);
    const counted = countingRebuilds(store);
    const tracker = new StateTracker(counted.store);
    const at = '2026-11-27T08:00:00.000Z';
    let position = 0;
    for (let version = 1; version <= 3; version++) {
      for (let i = 0; i < 10_050; i++) {
        const record: EventRecord = {
          aggregate_type: 'reefer',
          aggregate_id: `r-${i}`,
          event_type: 'reading',
          payload: { [`round${version}`]: `${i}` },
          metadata: { event_id: `e-${++position}`, created_at: at, issued_by: jane.issuedBy },
          version,
          position,
          hash: '',
          merkle_root: '',
        };
        const row = await tracker.rowAt(record);
        if (version === 3) expect(row.state).toEqual({ round1: `${i}`, round2: `${i}`, round3: `${i}` });
      }
    }
    // With 10,000 rows by count every event after the first round missed (20,100 rebuilds, each a
    // fold of every earlier event of its aggregate).
    expect(counted.rebuilds()).toBe(0);
    expect(tracker.cached.rows).toBe(10_050);
  });

  it('states that do not fit are rebuilt from the store, and the rows are still right', async () => {
    const store = await interleaved(50, 4, (r) => ({ round: `${r}`, [`f${r}`]: 'x' }));
    const counted = countingRebuilds(store);
    // Room for a few small states only: the 50 interleaved aggregates cannot all stay cached.
    const tracker = new StateTracker(counted.store, { maxBytes: 4_096 });
    for (const e of await userEvents(store)) {
      const row = await tracker.rowAt(e);
      const expected = await store.aggregate('reefer', e.aggregate_id, { version: e.version });
      expect(row.state).toEqual(expected.state);
    }
    expect(tracker.cached.bytes).toBeLessThanOrEqual(4_096);
    expect(counted.rebuilds()).toBeGreaterThan(0);
  });
});

describe('the tracker is bounded in bytes, not by a count of rows (QA-scale 4)', () => {
  it('large states are evicted to stay within the byte budget', async () => {
    const big = 'x'.repeat(100_000);
    const store = await interleaved(20, 1, () => ({ blob: big }));
    const tracker = new StateTracker(store, { maxBytes: 1024 * 1024 });
    for (const e of await userEvents(store)) await tracker.rowAt(e);
    // ~200 KB each (two bytes a character at worst): five fit in 1 MiB, not twenty.
    expect(tracker.cached.bytes).toBeLessThanOrEqual(1024 * 1024);
    expect(tracker.cached.rows).toBeGreaterThan(0);
    expect(tracker.cached.rows).toBeLessThan(6);
  });

  it('a count, when given, bounds it as well', async () => {
    const store = await interleaved(30, 1);
    const tracker = new StateTracker(store, { max: 10 });
    for (const e of await userEvents(store)) await tracker.rowAt(e);
    expect(tracker.cached.rows).toBe(10);
  });
});

describe('a tracker that starts cold (a restart)', () => {
  it("takes the newest event's row from the store without a replay, and rebuilds only older ones", async () => {
    const store = await interleaved(1, 200, (r) => ({ round: `${r}`, [`f${r % 7}`]: `${r}` }));
    const events = await userEvents(store);
    const counted = countingRebuilds(store);
    const first = events[0]!;
    const newest = events[events.length - 1]!;
    const row = await new StateTracker(counted.store).rowAt(newest);
    expect(row).toEqual({
      state: (await store.aggregate('reefer', 'r-0')).state,
      created_at: first.metadata.created_at,
      created_by: first.metadata.issued_by,
    });
    // Before, a fold of the 199 events before it.
    expect(counted.rebuilds()).toBe(0);

    const older = events[99]!;
    const rebuilt = await new StateTracker(counted.store).rowAt(older);
    expect(rebuilt.state).toEqual((await store.aggregate('reefer', 'r-0', { version: 100 })).state);
    expect(counted.rebuilds()).toBe(1);
  });
});
