/**
 * The recent tail of the committed log, shared by the delivery loops. Commits are fed in as they
 * happen (the commit listener hands over the records it already has), so loops that keep up never
 * read the store, and loops at nearby positions read each event once between them instead of once
 * each. Records are immutable, so caching them is safe; the cache is bounded by approximate bytes.
 */
import { LRUCache } from 'lru-cache';
import type { EventRecord } from '../core/event.js';
import type { EventStore } from '../store/index.js';

const DEFAULT_MAX_BYTES = 32 * 1024 * 1024;

/** Approximate in-memory size of a record (its text plus overhead). */
function sizeOf(r: EventRecord): number {
  let n = 400 + r.aggregate_id.length + r.event_type.length;
  for (const [k, v] of Object.entries(r.payload)) n += k.length + v.length + 32;
  return n;
}

export class LogCache {
  readonly #records: LRUCache<number, EventRecord>;

  constructor(
    private readonly store: EventStore,
    maxBytes = DEFAULT_MAX_BYTES,
  ) {
    this.#records = new LRUCache({ maxSize: maxBytes, sizeCalculation: sizeOf });
  }

  /** Keep freshly committed records (called from the commit listener: cheap, no I/O). */
  add(records: readonly EventRecord[]): void {
    for (const r of records) this.#records.set(r.position, r);
  }

  /** Committed records from `from` in position order, at most `limit`: from memory, else from the store. */
  async read(from: number, limit: number): Promise<EventRecord[]> {
    const out: EventRecord[] = [];
    const last = Math.min(this.store.size, from + limit - 1);
    let p = from;
    for (; p <= last; p++) {
      const r = this.#records.get(p);
      if (!r) break;
      out.push(r);
    }
    if (p > last) return out;
    const rest = await this.store.readLog(p, limit - out.length);
    this.add(rest);
    return out.concat(rest);
  }
}
