/**
 * The aggregate as of each event, for the sinks that write state (SQL rows, CSV rows). Delivery walks
 * the log in position order, so the state at version v is usually the cached state at v-1 folded with
 * the event's payload; anything else (a restart, a replay, a dead-letter retry) rebuilds it from the
 * store once.
 */
import { LRUCache } from 'lru-cache';
import { type EventRecord, foldState } from '../core/event.js';
import type { EventStore } from '../store/index.js';
import type { AggregateRow } from './types.js';

export class StateTracker {
  readonly #cache: LRUCache<string, { version: number; row: AggregateRow }>;

  constructor(
    private readonly store: EventStore,
    max = 10_000,
  ) {
    this.#cache = new LRUCache({ max });
  }

  async rowAt(record: EventRecord): Promise<AggregateRow> {
    const key = `${record.aggregate_type}\u0000${record.aggregate_id}`;
    const hit = this.#cache.get(key);
    if (hit?.version === record.version) return hit.row;
    let row: AggregateRow;
    if (hit?.version === record.version - 1) {
      row = { ...hit.row, state: foldState(hit.row.state, record.payload) };
    } else if (record.version === 1) {
      row = {
        state: { ...record.payload },
        created_at: record.metadata.created_at,
        created_by: record.metadata.issued_by,
      };
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
    // Never replace a newer cached state with an older one (dead-letter retries go back in time).
    if (!hit || hit.version < record.version) this.#cache.set(key, { version: record.version, row });
    return row;
  }
}
