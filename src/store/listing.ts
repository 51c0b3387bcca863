/**
 * Listing and counting aggregates by their meta keys: only the key ranges a listing covers are read
 * (a type, a token's scopes, system types left out), skipped aggregates are counted by key without
 * opening their metas, and the metas listed are checked against their events before they are served.
 */
import { err } from '../core/errors.js';
import { aggregateType } from '../core/names.js';
import { prefixEnd } from '../storage/engine.js';
import { openMetaAt } from './bound.js';
import * as K from './keys.js';
import { PACE_RECORDS, Pace } from './pace.js';
import type { EventStore } from './store.js';
import type { AggregateSummary } from './types.js';

/** What EventStore.list reads (see there). */
export type ListOptions = {
  skip?: number;
  take?: number;
  after?: string;
  type?: string;
  includeSystem?: boolean;
  scopes?: readonly string[];
  signal?: AbortSignal | undefined;
};

/** Whether the store holds the meta of `type/id` at `version` already checked (metas.ts). */
export type Vouches = (type: string, id: string, version: number) => boolean;

/** EventStore.countAggregates: meta keys counted, not decoded. */
export async function countAggregates(
  store: EventStore,
  opts: { includeSystem?: boolean; signal?: AbortSignal | undefined },
): Promise<number> {
  const prefix = K.metaPrefix();
  let count = 0;
  const range = { gte: prefix, lt: prefixEnd(prefix), signal: opts.signal };
  for await (const keys of store.engine.keyChunks('main', range)) {
    // A type starts right after the tag byte; system types start with '$'.
    for (const k of keys) if (opts.includeSystem || k[1] !== 0x24) count++;
  }
  return count;
}

/** EventStore.list: aggregates in key order. */
export async function listAggregates(
  store: EventStore,
  vouches: Vouches,
  opts: ListOptions,
): Promise<AggregateSummary[]> {
  const spans = listSpans(opts);
  let gt: Buffer | undefined;
  if (opts.after !== undefined) {
    const slash = opts.after.indexOf('/');
    if (slash < 1)
      throw err('EDBX_ERR_INVALID_ARGUMENT', {
        name: 'cursor',
        value: opts.after,
        reason: 'expected type/id',
      });
    gt = K.metaKey(opts.after.slice(0, slash), opts.after.slice(slash + 1));
  }
  const take = opts.take ?? Number.MAX_SAFE_INTEGER;
  const out: AggregateSummary[] = [];
  if (take <= 0) return out; // like events(): take 0 is an empty page, not one aggregate
  // A cursor before a span (taken from another listing) must not widen it.
  const from = (span: KeySpan) => (gt && Buffer.compare(gt, span.gte) >= 0 ? { gt } : { gte: span.gte });
  // A long listing lets timers and other requests run (the scan's chunks resolve as microtasks); one
  // whose client may go away (a signal) does so more often, and stops there once it has gone.
  const pace = new Pace(opts.signal, opts.signal ? PACE_RECORDS : 1024);
  let skip = opts.skip ?? 0;
  // Skipped aggregates are counted by key: their metas are neither read out nor opened.
  for (const span of spans) {
    if (skip === 0) break;
    if (gt && Buffer.compare(gt, span.lt) >= 0) continue;
    for await (const keys of store.engine.keyChunks('main', {
      ...from(span),
      lt: span.lt,
      limit: skip,
      signal: opts.signal,
    })) {
      if (pace.due(keys.length)) await pace.turn();
      skip -= keys.length;
      gt = keys.at(-1);
    }
  }
  if (skip > 0) return out;
  for (const span of spans) {
    if (gt && Buffer.compare(gt, span.lt) >= 0) continue;
    const limit = take - out.length;
    for await (const [k, v] of store.engine.range('main', {
      ...from(span),
      lt: span.lt,
      limit,
      signal: opts.signal,
    })) {
      if (pace.due()) await pace.turn();
      const { type, id } = K.decodeMetaKey(k);
      const m = openMetaAt(store.env.codec, v, type, id);
      out.push({
        aggregate_type: m.aggregate_type,
        aggregate_id: m.aggregate_id,
        version: m.version,
        merkle_root: m.merkle_root,
        archived: m.archived,
        updated_at: m.updated_at,
      });
    }
    if (out.length >= take) break;
  }
  await checkListed(store, vouches, out);
  return out;
}

/**
 * A listing serves metas as read from disk: each is checked against its events as loadChecked does
 * (no event may follow its version), in one batched read per keyspace for those not already checked,
 * so a meta rolled back behind the store is refused here too instead of listed with an old version.
 */
async function checkListed(store: EventStore, vouches: Vouches, items: readonly AggregateSummary[]) {
  const todo = items.filter((a) => !vouches(a.aggregate_type, a.aggregate_id, a.version));
  for (const space of ['main', 'archive'] as const) {
    const here = todo.filter((a) => (a.archived ? 'archive' : 'main') === space);
    if (here.length === 0) continue;
    const found = await store.engine.getMany(
      space,
      here.map((a) => K.eventKey(a.aggregate_type, a.aggregate_id, a.version + 1)),
    );
    // A commit may have landed since the page was read: meta() re-reads, and refuses a rollback.
    for (const [j, a] of here.entries())
      if (found[j] !== undefined) await store.meta(a.aggregate_type, a.aggregate_id);
  }
}

/** A range of meta keys: `gte` inclusive, `lt` exclusive. */
interface KeySpan {
  readonly gte: Buffer;
  readonly lt: Buffer;
}

/**
 * The meta key ranges a listing reads, in key order, disjoint. System types all start with '$',
 * which sorts below every character a type name may use, so hiding them is leaving out one range.
 */
function listSpans(opts: { type?: string; includeSystem?: boolean; scopes?: readonly string[] }): KeySpan[] {
  const typeSpan = (type: string): KeySpan => {
    const prefix = Buffer.concat([K.metaPrefix(), Buffer.from(type), Buffer.from([0])]);
    return { gte: prefix, lt: prefixEnd(prefix) };
  };
  const type = opts.type === undefined ? undefined : aggregateType(opts.type);
  if (opts.scopes === undefined) {
    if (type !== undefined) return [typeSpan(type)];
    const meta = K.metaPrefix();
    if (opts.includeSystem) return [{ gte: meta, lt: prefixEnd(meta) }];
    const system = Buffer.concat([meta, Buffer.from('$')]);
    return [
      { gte: meta, lt: system },
      { gte: prefixEnd(system), lt: prefixEnd(meta) },
    ];
  }
  const spans: KeySpan[] = [];
  for (const scope of opts.scopes) {
    const slash = scope.indexOf('/');
    const scopeType = slash < 0 ? scope : scope.slice(0, slash);
    if (type !== undefined && scopeType !== type) continue;
    if (scopeType.startsWith('$') && !opts.includeSystem) continue;
    if (slash < 0) spans.push(typeSpan(scope));
    else {
      const key = K.metaKey(scopeType, scope.slice(slash + 1));
      // The successor of a key in byte order is the key followed by 0x00.
      spans.push({ gte: key, lt: Buffer.concat([key, Buffer.from([0])]) });
    }
  }
  // Overlapping scopes (`patient` and `patient/p-1`) list each aggregate once.
  spans.sort((a, b) => Buffer.compare(a.gte, b.gte));
  const merged: KeySpan[] = [];
  for (const span of spans) {
    const last = merged.at(-1);
    if (last && Buffer.compare(span.gte, last.lt) <= 0) {
      if (Buffer.compare(span.lt, last.lt) > 0) merged[merged.length - 1] = { gte: last.gte, lt: span.lt };
    } else merged.push(span);
  }
  return merged;
}
