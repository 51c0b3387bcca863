/**
 * QA-scale finding 4: the store's state LRU counted aggregates, not bytes (`--memory-threshold`,
 * default 10,000): 12,000 aggregates of ~200 KB state took a server to 2.6 GB by reads alone. The LRU
 * is now bounded by the estimated bytes of its states as well (stateMemoryBytes), whichever is reached
 * first; a state larger than the whole budget is read from the engine every time, never stale.
 */
import { describe, expect, it } from 'vitest';
import { foldSized, payloadBytes, stateBytes, stateMemoryBytes } from '../../src/core/event.js';
import { MemoryEngine } from '../../src/storage/memory/memory-engine.js';
import { EventStore } from '../../src/store/index.js';

const jane = { issuedBy: { group: 'admin', user: 'jane' } };
const MiB = 1024 * 1024;
/** About 200 KB of state each (two bytes a character at worst). */
const big = (n: number) => ({ n: String(n), blob: `${n}:`.padEnd(100_000, 'x') });

async function openWith(memoryBytes: number, memoryThreshold = 10_000): Promise<EventStore> {
  return EventStore.open({ engine: new MemoryEngine(), memoryBytes, memoryThreshold });
}

describe('the state cache is bounded in bytes as well as by count (QA-scale 4)', () => {
  it('large states are evicted to stay within the byte budget, whatever the count allows', async () => {
    const store = await openWith(1 * MiB);
    try {
      for (let n = 1; n <= 20; n++)
        await store.append(
          { aggregate_type: 'reefer', aggregate_id: `r-${n}`, event_type: 'reading', payload: big(n) },
          jane,
        );
      expect(store.cached.bytes).toBeLessThanOrEqual(1 * MiB);
      expect(store.cached.states).toBeLessThan(6);
      // Reads fill it again: still within the budget, and every state is right.
      store.clearCache();
      for (let n = 1; n <= 20; n++) {
        const view = await store.aggregate('reefer', `r-${n}`);
        expect(view.state.n).toBe(String(n));
      }
      expect(store.cached.bytes).toBeLessThanOrEqual(1 * MiB);
      expect(store.cached.states).toBeGreaterThan(0);
      expect(store.cached.states).toBeLessThan(6);
    } finally {
      await store.close();
    }
  });

  it('small states are still bounded by the count', async () => {
    const store = await openWith(256 * MiB, 5);
    try {
      for (let n = 1; n <= 20; n++)
        await store.append(
          { aggregate_type: 'reefer', aggregate_id: `r-${n}`, event_type: 'reading', payload: { n: `${n}` } },
          jane,
        );
      expect(store.cached.states).toBe(5);
    } finally {
      await store.close();
    }
  });

  it('a state larger than the whole budget is not cached and never served stale', async () => {
    const store = await openWith(100_000);
    try {
      const agg = { aggregate_type: 'reefer', aggregate_id: 'r-1', event_type: 'reading' };
      await store.append({ ...agg, payload: { n: 'small' } }, jane);
      expect(store.cached.states).toBe(1);
      await store.append({ ...agg, payload: big(2) }, jane);
      // The small state cached before is dropped, not kept in place of the new one.
      expect(store.cached.states).toBe(0);
      expect((await store.aggregate('reefer', 'r-1')).state.n).toBe('2');
      await store.append({ ...agg, payload: { n: '3' } }, jane);
      expect((await store.aggregate('reefer', 'r-1')).state.n).toBe('3');
      expect(store.cached.bytes).toBeLessThanOrEqual(100_000);
    } finally {
      await store.close();
    }
  });
});

describe('estimated memory of a state', () => {
  it('grows with the characters and the fields, and is never zero', () => {
    expect(stateMemoryBytes({})).toBeGreaterThan(0);
    expect(stateMemoryBytes({ a: 'x'.repeat(1000) })).toBeGreaterThan(2000);
    const many = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`field${i}`, '1']));
    expect(stateMemoryBytes(many)).toBeGreaterThan(100 * stateMemoryBytes({}));
  });

  it('is remembered per state: a state folded from a measured one is not walked again', () => {
    const before = { a: 'x'.repeat(10) };
    expect(stateBytes(before)).toBe(payloadBytes(before));
    // Remembered: a state is never changed in place, so its size is not measured again.
    const measured = stateBytes(before);
    (before as Record<string, string>).c = 'changed in place';
    expect(stateBytes(before)).toBe(measured);
    // Folded: the size is worked out from the fields set (new and overwritten), exactly as measured.
    const base = { a: 'x'.repeat(10), b: 'é' };
    const after = foldSized(base, { b: 'longer value', c: 'new' });
    expect(after).toEqual({ a: 'x'.repeat(10), b: 'longer value', c: 'new' });
    expect(stateBytes(after)).toBe(payloadBytes(after));
  });
});
