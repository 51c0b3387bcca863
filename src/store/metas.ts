/**
 * The aggregate metas a store serves: an LRU of them as held in memory (with their Merkle frontiers
 * decoded), read from the engine on a miss, and checked against the events before they are served.
 * Nothing stored is ever overwritten, so the event after a meta's version must not exist: one that
 * does means the meta was rolled back or removed behind the store's back.
 */
import { LRUCache } from 'lru-cache';
import { type EventDbxError, err } from '../core/errors.js';
import { decodeFrontier } from '../core/merkle/index.js';
import type { StorageEngine } from '../storage/engine.js';
import { AUDIT_ID, AUDIT_TYPE } from './audit-log.js';
import { openMetaAt } from './bound.js';
import * as K from './keys.js';
import { DEFAULT_MEMORY_BYTES, DEFAULT_MEMORY_THRESHOLD, type EventStoreOptions } from './options.js';
import { type LiveMeta, type TxEnv, aggKey, liveMetaBytes } from './tx.js';
import type { AggregateMeta } from './types.js';

/** A meta as held in memory: with its Merkle frontier decoded. */
const liveOf = (meta: AggregateMeta): LiveMeta => ({
  meta,
  frontier: decodeFrontier(Buffer.from(meta.frontier, 'base64')),
});

export class Metas {
  readonly #cache: LRUCache<string, LiveMeta>;
  /** Metas the events do not contradict: written by the writer, or read and checked (loadChecked). */
  readonly #checked = new WeakSet<LiveMeta>();
  /** Bumped on every commit, so a read that raced a commit does not cache what it read. */
  #epoch = 0;

  /**
   * `env` is the store's (its codec is replaced in place); `auditProblem` tells why the audit log
   * cannot be trusted (EventStore.auditProblem).
   */
  constructor(
    private readonly engine: StorageEngine,
    private readonly env: TxEnv,
    bounds: Pick<EventStoreOptions, 'memoryThreshold' | 'memoryBytes'>,
    private readonly auditProblem: () => EventDbxError | undefined,
  ) {
    // A state larger than the whole budget is not cached (lru-cache drops the key, so an older copy
    // is never served): its reads go to the engine.
    this.#cache = new LRUCache({
      max: Math.max(1, bounds.memoryThreshold ?? DEFAULT_MEMORY_THRESHOLD),
      maxSize: Math.max(1, bounds.memoryBytes ?? DEFAULT_MEMORY_BYTES),
      sizeCalculation: liveMetaBytes,
    });
  }

  /** A batch committed: the metas the writer wrote are cached, and need no check. */
  committed(metas: readonly LiveMeta[]): void {
    this.#epoch++;
    for (const m of metas) {
      this.#cache.set(aggKey(m.meta.aggregate_type, m.meta.aggregate_id), m);
      this.#checked.add(m);
    }
  }

  /** Whether the cached meta of `type/id` is at `version` and checked (a listing need not check it). */
  vouches(type: string, id: string, version: number): boolean {
    const known = this.#cache.get(aggKey(type, id));
    return !!known && this.#checked.has(known) && known.meta.version === version;
  }

  /** Metas as stored (or cached), not checked against the events. */
  async loadLive(aggs: ReadonlyArray<readonly [string, string]>): Promise<(LiveMeta | null)[]> {
    const out: (LiveMeta | null)[] = new Array(aggs.length).fill(null);
    const missing: number[] = [];
    aggs.forEach(([t, i], n) => {
      const hit = this.#cache.get(aggKey(t, i));
      if (hit) out[n] = hit;
      else missing.push(n);
    });
    if (missing.length === 0) return out;
    const epoch = this.#epoch;
    const values = await this.engine.getMany(
      'main',
      missing.map((n) => K.metaKey(aggs[n]![0], aggs[n]![1])),
    );
    missing.forEach((n, j) => {
      const v = values[j];
      if (!v) return;
      const [t, i] = aggs[n]!;
      const meta = openMetaAt(this.env.codec, v, t, i);
      const live = liveOf(meta);
      out[n] = live;
      if (epoch === this.#epoch && !meta.archived) this.#cache.set(aggKey(t, i), live);
    });
    return out;
  }

  /**
   * Metas checked against the events: nothing stored is ever overwritten, so the event after a meta's
   * recorded version must not exist (it would if the meta were rolled back or removed). Each meta read
   * from disk is checked once (one more point read); metas the writer wrote need none. An aggregate
   * that fails gets the integrity error in its place: reads refuse it, and so do appends.
   */
  async loadChecked(
    aggs: ReadonlyArray<readonly [string, string]>,
  ): Promise<(LiveMeta | null | EventDbxError)[]> {
    const lives = await this.loadLive(aggs);
    const out: (LiveMeta | null | EventDbxError)[] = lives.slice();
    const auditProblem = this.auditProblem();
    // An audit log cut short is neither read nor appended to: a new entry would paper over the cut.
    const cut = (n: number) => auditProblem && aggs[n]![0] === AUDIT_TYPE && aggs[n]![1] === AUDIT_ID;
    lives.forEach((_, n) => {
      if (cut(n)) out[n] = auditProblem!;
    });
    const unchecked = lives.flatMap((l, n) => ((l === null || !this.#checked.has(l)) && !cut(n) ? [n] : []));
    if (unchecked.length === 0) return out;
    const next = (n: number) => (lives[n]?.meta.version ?? 0) + 1;
    // An archived aggregate's events are in the archive keyspace: its stub is checked against them.
    const contradicted: number[] = [];
    for (const space of ['main', 'archive'] as const) {
      const here = unchecked.filter((n) => (lives[n]?.meta.archived ? 'archive' : 'main') === space);
      if (here.length === 0) continue;
      const found = await this.engine.getMany(
        space,
        here.map((n) => K.eventKey(aggs[n]![0], aggs[n]![1], next(n))),
      );
      here.forEach((n, j) => {
        const live = lives[n];
        if (found[j] === undefined) {
          if (live) this.#checked.add(live);
        } else contradicted.push(n);
      });
    }
    if (contradicted.length === 0) return out;
    // A reader may have read the meta just before a commit of the next event: the meta on disk has
    // moved on since, and the writer vouches for what it wrote. Still the old version: tampered.
    const again = await this.engine.getMany(
      'main',
      contradicted.map((n) => K.metaKey(aggs[n]![0], aggs[n]![1])),
    );
    contradicted.forEach((n, j) => {
      const [type, id] = aggs[n]!;
      const v = again[j];
      const meta = v ? openMetaAt(this.env.codec, v, type, id) : undefined;
      if (meta && meta.version >= next(n)) {
        const live = liveOf(meta);
        this.#checked.add(live);
        out[n] = live;
        return;
      }
      out[n] = err('EDBX_ERR_INTEGRITY', {
        where: `aggregate ${type}/${id}`,
        reason: `event ${next(n)} is stored but the aggregate records version ${next(n) - 1}; run \`eventdbx aggregate verify\``,
      });
    });
    return out;
  }

  /** Drop cached state. */
  clear(): void {
    this.#cache.clear();
  }

  /** States in the LRU and their estimated bytes (stateMemoryBytes). */
  get cached(): { readonly states: number; readonly bytes: number } {
    return { states: this.#cache.size, bytes: this.#cache.calculatedSize };
  }
}
