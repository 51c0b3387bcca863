/**
 * The aggregate as of each event, for the sinks that write state (SQL rows, CSV rows). Delivery walks
 * the log in position order, so the state at version v is usually the cached state at v-1 folded with
 * the event's payload. Otherwise (a restart, a replay, a dead-letter retry) the newest event's state
 * is the store's own, and an older one is rebuilt from the store once, from the nearest snapshot at
 * or below v-1 (from event 1 for a type without a snapshot threshold).
 *
 * The cache is bounded by the estimated bytes of its rows (stateMemoryBytes), not by a count of them. A
 * backlog written by many aggregates at once interleaves them in the log: every aggregate between two
 * events of one aggregate must still be cached when the second comes, or that event rebuilds its
 * state from the store, a fold of all earlier events, and catch-up turns quadratic. A count (it was
 * 10,000) is the wrong bound both ways: too few for many small states (11,000 interleaved containers
 * missed on every event), far too much memory for a few large ones. In bytes, the default budget holds
 * about 90,000 states of a few short fields, and large ones cannot take more than the budget. Each entry
 * counts a fixed overhead besides its row, so the byte budget bounds the count too. States that do
 * not fit rebuild as above: a snapshot threshold on their type bounds each rebuild.
 */
import { LRUCache } from 'lru-cache';
import { type EventRecord, foldSized, foldState, stateMemoryBytes } from '../core/event.js';
import type { EventStore } from '../store/index.js';
import type { AggregateRow } from './types.js';

/** Estimated bytes of cached rows per state plugin by default: 64 MiB (the store's own is 256 MiB). */
export const DEFAULT_TRACKER_BYTES = 64 * 1024 * 1024;
/** An entry besides its row: the key, the entry object, the LRU's map entry and list slots. */
const ENTRY_BYTES = 160;

export interface StateTrackerLimits {
  /** Estimated bytes of the cached rows (default DEFAULT_TRACKER_BYTES). */
  readonly maxBytes?: number;
  /** At most this many rows as well (default: only the byte budget, which bounds the count). */
  readonly max?: number;
}

interface Entry {
  readonly version: number;
  readonly row: AggregateRow;
}

export class StateTracker {
  readonly #cache: LRUCache<string, Entry>;

  constructor(
    private readonly store: EventStore,
    limits: StateTrackerLimits = {},
  ) {
    this.#cache = new LRUCache<string, Entry>({
      // lru-cache preallocates `max` slots: no count unless asked, the byte budget bounds it anyway.
      ...(limits.max === undefined ? {} : { max: Math.max(1, limits.max) }),
      maxSize: Math.max(1, limits.maxBytes ?? DEFAULT_TRACKER_BYTES),
      sizeCalculation: (e, key) => ENTRY_BYTES + 2 * key.length + stateMemoryBytes(e.row.state),
    });
  }

  /** Rows cached, and their estimated bytes (for tests and diagnostics). */
  get cached(): { readonly rows: number; readonly bytes: number } {
    return { rows: this.#cache.size, bytes: this.#cache.calculatedSize };
  }

  async rowAt(record: EventRecord): Promise<AggregateRow> {
    const key = `${record.aggregate_type}\u0000${record.aggregate_id}`;
    const hit = this.#cache.get(key);
    if (hit?.version === record.version) return hit.row;
    let row: AggregateRow;
    if (hit?.version === record.version - 1) {
      row = { ...hit.row, state: foldSized(hit.row.state, record.payload) };
    } else if (record.version === 1) {
      row = {
        state: { ...record.payload },
        created_at: record.metadata.created_at,
        created_by: record.metadata.issued_by,
      };
    } else {
      // Delivery that keeps up asks for the newest event: the store holds that state already (a
      // restart's first event of each aggregate, one at a million events, costs no replay).
      const live = await this.store.meta(record.aggregate_type, record.aggregate_id);
      const meta = live?.meta;
      if (meta && !meta.archived && meta.version === record.version) {
        row = { state: meta.state, created_at: meta.created_at, created_by: meta.created_by };
      } else {
        const [first, before] = await Promise.all([
          this.store.event(record.aggregate_type, record.aggregate_id, 1),
          this.store.aggregate(record.aggregate_type, record.aggregate_id, { version: record.version - 1 }),
        ]);
        row = {
          state: foldState(before.state, record.payload),
          created_at: first.metadata.created_at,
          created_by: first.metadata.issued_by,
        };
      }
    }
    // Never replace a newer cached state with an older one (dead-letter retries go back in time).
    if (!hit || hit.version < record.version) this.#cache.set(key, { version: record.version, row });
    return row;
  }
}
