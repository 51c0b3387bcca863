/**
 * A write transaction of the group-commit writer: an overlay over committed data that collects the
 * operations of many appends into one atomic engine batch. Savepoints let one job fail without
 * disturbing the others batched with it.
 */
import { randomUUID } from 'node:crypto';
import { err, isEventDbxError } from '../core/errors.js';
import {
  type EventIssuer,
  type EventRecord,
  type Payload,
  type UnsealedRecord,
  foldSized,
  foldState,
  appendLeafJson,
  eventIssuer,
  normalizePayload,
  samePayload,
  stateBytes,
  stateMemoryBytes,
} from '../core/event.js';
import { type Frontier, appendLeaf, emptyFrontier, frontierRoot } from '../core/merkle/index.js';
import { StoredEventBuilder } from './event-format.js';
import {
  aggregateId,
  newAggregateId,
  aggregateType,
  eventId as checkEventId,
  eventType,
  expectedVersion,
} from '../core/names.js';
import type { TokenRecord } from '../core/tokens.js';
import type { WriteOp } from '../storage/engine.js';
import { type RecordCodec, sealJson } from './codec.js';
import * as K from './keys.js';
import type { AggregateMeta, AppendRequest, SnapshotRecord, WriteContext } from './types.js';

/** Committed per-aggregate state held in memory: the stored meta plus its decoded frontier. */
export interface LiveMeta {
  readonly meta: AggregateMeta;
  readonly frontier: Frontier;
}

/** A meta besides its state: its object, names, dates, root and the cache's entry. */
const META_BYTES = 1024;
/** A frontier node: a 32-byte hash in its own Buffer (object, backing store, pointers). */
const FRONTIER_NODE_BYTES = 128;

/** Estimated memory of a cached LiveMeta (the store's LRU is bounded in bytes by it). */
export const liveMetaBytes = (live: LiveMeta): number =>
  META_BYTES + stateMemoryBytes(live.meta.state) + FRONTIER_NODE_BYTES * live.frontier.nodes.length;

/** Checks an append against schemas (or anything else) before it is written; throws to refuse. */
export type AppendValidator = (
  req: { aggregate_type: string; aggregate_id: string; event_type: string; payload: Payload },
  current: AggregateMeta | undefined,
) => void;

export interface TxEnv {
  /** Replaced in place on DEK rotation (EventStore.replaceCodec), so it is not readonly. */
  codec: RecordCodec;
  readonly now: () => Date;
  readonly maxPayloadBytes: number;
  /** Bound on an aggregate's state, measured as a payload is (see `grownState`). */
  readonly maxStateBytes: number;
  readonly validator: AppendValidator | undefined;
  readonly snapshotThreshold: (type: string) => number;
}

type Undo = () => void;

export const aggKey = (type: string, id: string): string => `${type}\u0000${id}`;

/**
 * The state after `payload` is folded into `before`, refused if it would be over `limit` bytes. An
 * aggregate already over the limit (stored before it was set or lowered) stays readable and takes
 * appends that do not grow its state, so it can still be corrected or closed.
 */
function grownState(type: string, id: string, before: Payload, payload: Payload, limit: number): Payload {
  const was = stateBytes(before);
  const state = foldSized(before, payload);
  const size = stateBytes(state);
  if (size > limit && size > was)
    throw err('EDBX_ERR_STATE_TOO_LARGE', { aggregate_type: type, aggregate_id: id, size, limit });
  return state;
}

/**
 * Transactions are atomic, so a retry finds all of its events appended or none: a transaction mixing
 * idempotent replays with new events is a new transaction reusing an event id, refused whole.
 */
export function refuseMixedRetry(results: ReadonlyArray<{ record: EventRecord; duplicate: boolean }>): void {
  const replayed = results.find((r) => r.duplicate);
  if (replayed && results.some((r) => !r.duplicate)) {
    throw err('EDBX_ERR_EVENT_ID_CONFLICT', {
      event_id: replayed.record.metadata.event_id,
      reason: 'in an earlier transaction, with events this one adds',
    });
  }
}

/** What `WriteTx.append` answers for one event. */
export type AppendResult = { record: EventRecord; duplicate: boolean; usedElsewhere?: string };

/**
 * `e`, a refusal of the next event of a request whose `earlier` events were appended, said right when
 * one of them moved the aggregate the event expects a version of (qa-retry #4): the conflict then comes
 * from the request itself, not another writer, so it names that event (`by(j)`: its index in a
 * transaction, its number in a stage) and the stored version (`current`), never "reload and retry".
 */
export function conflictWithin(
  e: unknown,
  earlier: readonly AppendResult[],
  within: 'transaction' | 'stage',
  by: (j: number) => number,
): unknown {
  if (!isEventDbxError(e, 'EDBX_ERR_VERSION_CONFLICT') || e.params.within !== undefined) return e;
  const { aggregate_type: type, aggregate_id: id, actual } = e.params;
  // Replays of earlier appends (duplicates) moved nothing.
  const moved = earlier.flatMap((r, j) =>
    !r.duplicate && r.record.aggregate_type === type && r.record.aggregate_id === id ? [j] : [],
  );
  if (moved.length === 0) return e;
  return err('EDBX_ERR_VERSION_CONFLICT', {
    ...e.params,
    current: (actual as number) - moved.length,
    within,
    by: by(moved.at(-1)!),
  });
}

export class WriteTx {
  readonly ops: WriteOp[] = [];
  readonly records: EventRecord[] = [];
  /** Run by the writer once the batch is durable, before the next batch starts. */
  readonly onCommit: Array<() => void> = [];
  /** Loaded (committed) metas; `null` = aggregate does not exist. */
  readonly loaded = new Map<string, LiveMeta | null>();
  /** Current overlay of metas touched by this transaction. */
  readonly metas = new Map<string, LiveMeta | null>();
  /** Aggregates that refuse writes (their stored data is inconsistent), with the error they give. */
  readonly refused = new Map<string, Error>();
  /** Token records changed by this transaction (hash → record). */
  readonly tokens = new Map<string, TokenRecord>();
  /** event_id → existing event (committed, looked up before the jobs ran, or written in this tx). */
  readonly idem = new Map<string, EventRecord | null>();
  position: number;
  ledger: Frontier;
  /** Exclusive jobs only: load more committed data into the overlay while running. */
  fetch: (
    aggregates: ReadonlyArray<readonly [string, string]>,
    eventIds?: readonly string[],
  ) => Promise<void> = () =>
    Promise.reject(err('EDBX_ERR_INTERNAL', { reason: 'fetch is only available to exclusive jobs' }));
  #journal: Undo[] = [];

  constructor(
    readonly env: TxEnv,
    committedPosition: number,
    committedLedger: Frontier,
    /** Token records changed by the batch in flight, which this transaction builds on. */
    private readonly baseTokens: ReadonlyMap<string, TokenRecord> = new Map(),
  ) {
    this.position = committedPosition;
    this.ledger = committedLedger;
  }

  savepoint(): () => void {
    const ops = this.ops.length;
    const records = this.records.length;
    const onCommit = this.onCommit.length;
    const journal = this.#journal.length;
    const position = this.position;
    const ledger = this.ledger;
    return () => {
      this.ops.length = ops;
      this.records.length = records;
      this.onCommit.length = onCommit;
      while (this.#journal.length > journal) this.#journal.pop()!();
      this.position = position;
      this.ledger = ledger;
    };
  }

  #set<K, V>(map: Map<K, V>, key: K, value: V): void {
    const had = map.has(key);
    const prev = map.get(key);
    map.set(key, value);
    this.#journal.push(() => (had ? map.set(key, prev as V) : map.delete(key)));
  }

  live(type: string, id: string): LiveMeta | null {
    const k = aggKey(type, id);
    const refusal = this.refused.get(k);
    if (refusal) throw refusal;
    const m = this.metas.get(k);
    if (m !== undefined) return m;
    const l = this.loaded.get(k);
    if (l === undefined)
      throw err('EDBX_ERR_INTERNAL', { reason: `aggregate ${type}/${id} was not prefetched` });
    return l;
  }

  setLive(type: string, id: string, live: LiveMeta): void {
    this.#set(this.metas, aggKey(type, id), live);
  }

  afterCommit(fn: () => void): void {
    this.onCommit.push(fn);
  }

  /** Current token record: changed in this transaction or the batch in flight, else committed. */
  token(hash: string, committed: ReadonlyMap<string, TokenRecord>): TokenRecord | undefined {
    return this.tokens.get(hash) ?? this.baseTokens.get(hash) ?? committed.get(hash);
  }

  setToken(t: TokenRecord): void {
    this.#set(this.tokens, t.hash, t);
    this.put(K.tokenKey(t.hash), sealJson(this.env.codec, t));
  }

  put(key: Buffer, value: Buffer, space: 'main' | 'archive' = 'main'): void {
    this.ops.push({ type: 'put', space, key, value });
  }

  del(key: Buffer, space: 'main' | 'archive' = 'main'): void {
    this.ops.push({ type: 'del', space, key });
  }

  /**
   * Append one event. Validation happens before anything is recorded; throws a coded error to refuse.
   * `system` appends (the audit log) may use reserved aggregate types starting with '$'.
   *
   * A client event id already used on another aggregate cannot be a retry of this append (a retry
   * names the same aggregate), and is refused only after every check an unused id gets (archive,
   * expected version, schema, size): answered first, it told a token scoped to this aggregate whether
   * the id exists on aggregates it may not read (pen-test finding 8). With `laterIdConflict` the event
   * is even recorded as if the id were unused, and the result names the id in `usedElsewhere`: the
   * caller refuses the job with EDBX_ERR_EVENT_ID_CONFLICT after its own checks (the rest of a
   * transaction, the token's allowance), and the writer's savepoint undoes what was recorded.
   */
  append(
    req: AppendRequest,
    ctx: WriteContext,
    opts: { system?: boolean; laterIdConflict?: boolean } = {},
  ): AppendResult {
    const type = opts.system ? req.aggregate_type : aggregateType(req.aggregate_type);
    const id = aggregateId(req.aggregate_id);
    const evType = eventType(req.event_type);
    const payload = normalizePayload(req.payload, this.env.maxPayloadBytes);
    const expected = req.expected_version === undefined ? undefined : expectedVersion(req.expected_version);
    const clientId = req.event_id === undefined ? undefined : checkEventId(req.event_id);

    // An event id used on another aggregate is refused last (see above).
    let usedElsewhere: string | undefined;
    if (clientId !== undefined) {
      const prior = this.idem.get(clientId);
      if (prior === undefined)
        throw err('EDBX_ERR_INTERNAL', { reason: `event id ${clientId} was not prefetched` });
      if (prior !== null && (prior.aggregate_type !== type || prior.aggregate_id !== id)) {
        usedElsewhere = clientId;
      } else if (prior !== null) {
        const same = prior.event_type === evType && samePayload(prior.payload, payload);
        if (!same) throw err('EDBX_ERR_EVENT_ID_CONFLICT', { event_id: clientId });
        // A retry is the same person's: someone else must not be told their write succeeded.
        const by = prior.metadata.issued_by;
        if (by.group !== ctx.issuedBy.group || by.user !== ctx.issuedBy.user)
          throw err('EDBX_ERR_EVENT_ID_CONFLICT', { event_id: clientId, reason: 'by someone else' });
        return { record: prior, duplicate: true };
      }
    }

    const live = this.live(type, id);
    const current = live?.meta;
    // A new aggregate's id is in NFC; one stored before that rule keeps taking events.
    if (current === undefined) newAggregateId(id);
    if (current?.archived)
      throw err('EDBX_ERR_AGGREGATE_ARCHIVED', { aggregate_type: type, aggregate_id: id });
    const version = (current?.version ?? 0) + 1;
    if (expected !== undefined && expected !== version - 1) {
      throw err('EDBX_ERR_VERSION_CONFLICT', {
        aggregate_type: type,
        aggregate_id: id,
        expected,
        actual: version - 1,
        current: version - 1,
      });
    }
    this.env.validator?.({ aggregate_type: type, aggregate_id: id, event_type: evType, payload }, current);
    // The audit log is exempt: its state is the last value of each field the store's own actions
    // record, bounded by the code, and refusing it would refuse the administrative action itself.
    const state = opts.system
      ? foldState(current?.state ?? {}, payload)
      : grownState(type, id, current?.state ?? {}, payload, this.env.maxStateBytes);
    if (usedElsewhere !== undefined && !opts.laterIdConflict)
      throw err('EDBX_ERR_EVENT_ID_CONFLICT', { event_id: usedElsewhere });

    const createdAt = this.env.now().toISOString();
    const position = this.position + 1;
    const unsealed: UnsealedRecord = {
      aggregate_type: type,
      aggregate_id: id,
      event_type: evType,
      payload,
      metadata: {
        event_id: clientId ?? randomUUID(),
        created_at: createdAt,
        issued_by: eventIssuer(ctx.issuedBy),
      },
      version,
      position,
    };
    const stored = new StoredEventBuilder(appendLeafJson(unsealed));
    const leaf = stored.leafHash();
    const grown = appendLeaf(live?.frontier ?? emptyFrontier, leaf);
    const root = frontierRoot(grown.frontier);
    const record: EventRecord = {
      ...unsealed,
      hash: leaf.toString('hex'),
      merkle_root: root.toString('hex'),
    };

    // One N entry per event holds every perfect node this append completed (level 0 = the leaf).
    this.put(K.nodeKey(type, id, version), Buffer.concat(grown.completed.map((n) => n.hash)));
    this.put(K.eventKey(type, id, version), this.env.codec.seal(stored.finish(leaf, root)));
    const ref = { type, id, version };
    this.put(K.idempotencyKey(record.metadata.event_id), K.encodeRef(ref));

    const ledger = appendLeaf(this.ledger, leaf);
    this.put(
      K.positionKey(position),
      K.encodeLedgerEntry(
        ledger.completed.map((n) => n.hash),
        ref,
      ),
    );
    this.ledger = ledger.frontier;
    this.position = position;

    let meta: AggregateMeta = {
      aggregate_type: type,
      aggregate_id: id,
      version,
      state,
      merkle_root: record.merkle_root,
      frontier: '',
      archived: false,
      created_at: current?.created_at ?? createdAt,
      created_by: current?.created_by ?? record.metadata.issued_by,
      updated_at: createdAt,
      updated_by: record.metadata.issued_by,
      last_snapshot_version: current?.last_snapshot_version ?? 0,
    };
    const threshold = this.env.snapshotThreshold(type);
    if (threshold > 0 && version - meta.last_snapshot_version >= threshold) {
      meta = { ...meta, last_snapshot_version: version };
      this.putSnapshot(meta, record.metadata.issued_by, 'automatic (snapshot threshold)');
    }
    this.setLive(type, id, { meta, frontier: grown.frontier });
    this.#set(this.idem, record.metadata.event_id, record);
    this.records.push(record);
    return usedElsewhere === undefined
      ? { record, duplicate: false }
      : { record, duplicate: false, usedElsewhere };
  }

  putSnapshot(meta: AggregateMeta, by: EventIssuer, comment: string | undefined): SnapshotRecord {
    const snap: SnapshotRecord = {
      aggregate_type: meta.aggregate_type,
      aggregate_id: meta.aggregate_id,
      version: meta.version,
      state: meta.state,
      merkle_root: meta.merkle_root,
      created_at: this.env.now().toISOString(),
      updated_at: meta.updated_at,
      taken_by: eventIssuer(by),
      ...(comment === undefined ? {} : { comment }),
    };
    this.put(
      K.snapshotKey(meta.aggregate_type, meta.aggregate_id, meta.version),
      sealJson(this.env.codec, snap),
    );
    return snap;
  }
}
