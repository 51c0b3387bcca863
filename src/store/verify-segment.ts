/**
 * Verifying a run of one aggregate's events (a segment): each event's leaf hash from its stored bytes,
 * each root after it, every stored Merkle node, the ledger entry pointing at it, and the fold of the
 * payloads. A segment starting after version 1 starts from the tree as it was before its first event
 * (the frontier, taken from stored nodes that the segment before it checks), so the segments of a long
 * aggregate can be verified on several threads at once. This module needs an engine and a codec only,
 * never the store, so that it runs on worker threads (verify-thread.ts).
 */
import { isEventDbxError } from '../core/errors.js';
import { type Payload, foldState, leafDataOf, samePayload } from '../core/event.js';
import {
  type CompletedNode,
  type Frontier,
  appendLeaf,
  emptyFrontier,
  frontierRoot,
  leafHash,
  sha256,
} from '../core/merkle/index.js';
import type { Space, StorageEngine } from '../storage/engine.js';
import { prefixEnd } from '../storage/engine.js';
import { openMetaAt, openSnapshotAt } from './bound.js';
import type { RecordCodec } from './codec.js';
import { type OpenedEvent, belongsAt, isLegacy, openStoredEvent, servedRecord } from './event-format.js';
import * as K from './keys.js';
import type { AggregateMeta, VerifyReport } from './types.js';

/** What verifying a segment came to: its result, or what stopped it. */
export type Outcome =
  { readonly ok: true; readonly result: SegmentResult } | { readonly ok: false; readonly failure: unknown };

/** A verification failure at `version` (the first bad version found). */
export class Bad extends Error {
  constructor(
    readonly version: number,
    reason: string,
  ) {
    super(reason);
  }
}

/** Verification stopped because the store is closing. */
export class Stopped extends Error {}

export interface Segment {
  readonly type: string;
  readonly id: string;
  readonly space: Space;
  /** The tree before the segment's first event: its size is that event's version - 1. */
  readonly frontier: Frontier;
  /** Last version of the segment; undefined: every event stored from the first on. */
  readonly to: number | undefined;
}

export interface SegmentResult {
  /** The fold of the segment's payloads (folding segment results in order gives the state). */
  readonly state: Payload;
  /** The tree after the segment's last event. */
  readonly frontier: Frontier;
  /**
   * Snapshots in a segment after the first, checked as far as the segment can: what is left to check
   * against the state before the segment (`conclude` does).
   */
  readonly snapshots: readonly SnapshotRest[];
}

/**
 * A snapshot's fields the segment did not set: they must be the state before the segment, and every
 * field of that state must be in the snapshot (`keys`: all of the snapshot's fields).
 */
export interface SnapshotRest {
  readonly version: number;
  readonly rest: Payload;
  readonly keys: readonly string[];
}

export interface SegmentSource {
  readonly engine: StorageEngine;
  readonly codec: RecordCodec;
  /** Polled between chunks: true stops the verification with `Stopped`. */
  readonly stopping?: () => boolean;
}

/** `verifySegment`, its result or failure as an Outcome (never rejects). */
export const segmentOutcome = (source: SegmentSource, segment: Segment): Promise<Outcome> =>
  verifySegment(source, segment).then(
    (result) => ({ ok: true, result }) as const,
    (failure: unknown) => ({ ok: false, failure }) as const,
  );

/** Verify one segment. Throws `Bad` for the first integrity problem, `Stopped` when told to stop. */
export async function verifySegment(source: SegmentSource, segment: Segment): Promise<SegmentResult> {
  const { engine, codec } = source;
  const { type, id, space, to } = segment;
  const from = segment.frontier.size + 1;
  const stop = () => {
    if (source.stopping?.()) throw new Stopped('verification stopped: the store is closing');
  };
  let frontier = segment.frontier;
  let state: Payload = {};
  let version = from - 1;
  const ledgerChecks = new LedgerEntryChecks(engine, type, id, from);
  const snapshots = new SnapshotChecks(source, segment);
  // The N entries (one per version) are read in step with the events.
  const nodeRange = keyRange(
    K.nodePrefix(type, id),
    K.nodeKey(type, id, from),
    to === undefined ? undefined : K.nodeKey(type, id, to + 1),
  );
  const nodeChunks = engine.valueChunks(space, nodeRange)[Symbol.asyncIterator]();
  let nodes: Buffer[] = [];
  let nodeAt = 0;
  const nextNodes = async (): Promise<Buffer | undefined> => {
    if (nodeAt >= nodes.length) {
      const r = await nodeChunks.next();
      if (r.done) return undefined;
      nodes = r.value;
      nodeAt = 0;
    }
    return nodes[nodeAt++];
  };
  try {
    // A bounded segment reads one event past its end, only to tell a missing last event the way one
    // unbounded scan does ("event 115 is missing (found 116)").
    const eventRange = keyRange(
      K.eventPrefix(type, id),
      K.eventKey(type, id, from),
      to === undefined ? undefined : K.eventKey(type, id, to + 2),
    );
    scan: for await (const chunk of engine.valueChunks(space, eventRange)) {
      stop();
      for (const value of chunk) {
        const expected = version + 1;
        if (to !== undefined && expected > to) break scan;
        let opened: OpenedEvent;
        try {
          opened = openStoredEvent(codec, value, `event ${type}/${id}@${expected}`);
        } catch (x) {
          throw new Bad(expected, isEventDbxError(x) ? x.message : 'undecodable record');
        }
        const e = opened.fields;
        if (Number.isSafeInteger(e.version) && e.version > expected) {
          throw new Bad(expected, `event ${expected} is missing (found ${e.version})`);
        }
        if (!belongsAt(e, type, id, expected)) {
          throw new Bad(expected, 'record does not belong at this key');
        }
        // The leaf hash of the bytes as stored (they are the canonical leaf data), never the stored hash.
        const leaf = isLegacy(opened) ? leafHash(leafDataOf(servedRecord(opened))) : sha256(opened.leafInput);
        if (!leaf.equals(opened.hash)) throw new Bad(expected, 'event content does not match its hash');
        const grown = appendLeaf(frontier, leaf);
        frontier = grown.frontier;
        if (!sameNodes(await nextNodes(), grown.completed)) {
          throw new Bad(expected, `stored Merkle nodes of version ${expected} do not match`);
        }
        if (!frontierRoot(frontier).equals(opened.root)) {
          throw new Bad(expected, 'merkle_root does not match the recomputed tree');
        }
        state = foldState(state, e.payload);
        await ledgerChecks.add(e.position, leaf, e.metadata.event_id);
        // The root just checked is the root of this version (most versions have no snapshot).
        if (snapshots.due(expected)) await snapshots.at(expected, opened.root, state);
        version = expected;
      }
    }
    if (to !== undefined && version !== to) throw new Bad(version + 1, `event ${version + 1} is missing`);
    if ((await nextNodes()) !== undefined) {
      throw new Bad(version + 1, `stored Merkle nodes exist beyond version ${version}`);
    }
    await snapshots.done(version);
    await ledgerChecks.done();
    return { state, frontier, snapshots: snapshots.rests };
  } catch (caught) {
    // A ledger-entry check still in flight may have failed at an earlier version: report the first.
    const pending = await ledgerChecks.settle();
    throw pending instanceof Bad && (!(caught instanceof Bad) || pending.version < caught.version)
      ? pending
      : caught;
  } finally {
    // Stopped early: close the node and snapshot scans too (the event scan closes with its loop).
    await nodeChunks.return?.(undefined);
    await snapshots.close();
  }
}

/** The report on one aggregate from the outcomes of its segments and the final checks of its meta. */
export async function conclude(
  source: SegmentSource,
  meta: AggregateMeta,
  segments: readonly Segment[],
  outcomes: readonly Outcome[],
): Promise<VerifyReport> {
  const base = { aggregate_type: meta.aggregate_type, aggregate_id: meta.aggregate_id };
  try {
    let state: Payload = {};
    let frontier: Frontier = emptyFrontier;
    for (const [i, o] of outcomes.entries()) {
      if (!o.ok) throw o.failure;
      for (const snap of o.result.snapshots) checkSnapshotRest(snap, state);
      state = foldState(state, o.result.state);
      frontier = o.result.frontier;
      const next = segments[i + 1];
      // The next segment started from stored nodes, which this one has just checked: the same tree.
      if (next && !sameFrontier(frontier, next.frontier)) {
        throw new Bad(
          next.frontier.size + 1,
          `stored Merkle nodes before version ${next.frontier.size + 1} do not match`,
        );
      }
    }
    const version = frontier.size;
    if (version !== meta.version) {
      // The first version the two disagree on: the first event the meta does not account for, or
      // the first one it records that is not stored.
      throw new Bad(
        Math.min(version, meta.version) + 1,
        `aggregate records version ${meta.version} but ${version} events are stored`,
      );
    }
    const rootHex = frontierRoot(frontier).toString('hex');
    if (rootHex !== meta.merkle_root)
      throw new Bad(version, 'stored aggregate root does not match the events');
    await checkNothingBeyond(source, meta);
    await checkState(source, meta, state);
    return { ...base, ok: true, version, merkle_root: rootHex };
  } catch (x) {
    if (x instanceof Bad) {
      return {
        ...base,
        ok: false,
        version: meta.version,
        merkle_root: meta.merkle_root,
        first_bad_version: x.version,
        reason: x.message,
      };
    }
    throw x;
  }
}

export const notFound = (type: string, id: string): VerifyReport => ({
  aggregate_type: type,
  aggregate_id: id,
  ok: false,
  version: 0,
  merkle_root: '',
  first_bad_version: 1,
  reason: 'aggregate not found',
});

/** The whole of an aggregate, as its meta records it, as one segment. */
export const wholeOf = (meta: AggregateMeta): Segment => ({
  type: meta.aggregate_type,
  id: meta.aggregate_id,
  space: meta.archived ? 'archive' : 'main',
  frontier: emptyFrontier,
  to: meta.version,
});

/**
 * Nothing is stored past the version a meta records (an event, its Merkle nodes, a snapshot), unless it
 * was committed since the meta was read: writes go on while a verification runs, and what they add is
 * for the next one. What the meta does not account for and no newer meta vouches for is a meta rolled
 * back behind its events, or something slipped in after them.
 */
async function checkNothingBeyond(source: SegmentSource, meta: AggregateMeta): Promise<void> {
  const { aggregate_type: type, aggregate_id: id, version } = meta;
  const space: Space = meta.archived ? 'archive' : 'main';
  const lastBeyond = async (prefix: Buffer, first: Buffer): Promise<number | undefined> => {
    for await (const [key] of source.engine.range(space, {
      gte: first,
      lt: prefixEnd(prefix),
      reverse: true,
      limit: 1,
    }))
      return K.keyVersion(key);
    return undefined;
  };
  const found = [
    [await lastBeyond(K.eventPrefix(type, id), K.eventKey(type, id, version + 1)), 'event'],
    [await lastBeyond(K.nodePrefix(type, id), K.nodeKey(type, id, version + 1)), 'node'],
    [await lastBeyond(K.snapshotPrefix(type, id), K.snapshotKey(type, id, version + 1)), 'snapshot'],
  ] as const;
  if (found.every(([v]) => v === undefined)) return;
  const now = await currentMeta(source, type, id);
  for (const [last, kind] of found) {
    if (last === undefined || (now && now.archived === meta.archived && now.version >= last)) continue;
    if (kind === 'event')
      throw new Bad(version + 1, `aggregate records version ${version} but event ${last} is stored`);
    if (kind === 'node') throw new Bad(version + 1, `stored Merkle nodes exist beyond version ${version}`);
    throw new Bad(last, `snapshot at version ${last} is past the last event (${version})`);
  }
}

/** The aggregate's meta as stored now; undefined when it is missing or does not open. */
async function currentMeta(source: SegmentSource, type: string, id: string) {
  const raw = await source.engine.get('main', K.metaKey(type, id));
  try {
    return raw && openMetaAt(source.codec, raw, type, id);
  } catch {
    return undefined;
  }
}

/**
 * Verify one aggregate whole, reading its meta here: what a worker does with the short aggregates of
 * a verify-all.
 */
export async function verifyWhole(source: SegmentSource, type: string, id: string): Promise<VerifyReport> {
  const raw = await source.engine.get('main', K.metaKey(type, id));
  if (!raw) return notFound(type, id);
  let meta: AggregateMeta;
  try {
    meta = openMetaAt(source.codec, raw, type, id);
  } catch (e) {
    return { ...notFound(type, id), reason: isEventDbxError(e) ? e.message : 'undecodable aggregate meta' };
  }
  return verifyLatest(source, meta, async (m) => {
    const segment = wholeOf(m);
    return conclude(source, m, [segment], [await segmentOutcome(source, segment)]);
  });
}

/** Verifications of one aggregate, in all, when writes keep moving it under them (see verifyLatest). */
const ATTEMPTS = 5;

/** Archives and restores seen from a verification (EventStore.watchMoves). */
export interface MoveWatch {
  /** Whether a move was under way when the watch began, or one began since. */
  raced(): boolean;
  /** Resolves once the moves under way have settled. */
  settled(): Promise<void>;
  /** Run `fn` where no move can land (an exclusive writer job): the last attempt, when all raced. */
  alone?<T>(fn: () => Promise<T>): Promise<T>;
}

/**
 * `verify` the aggregate of `meta`; when that fails and the aggregate may have moved meanwhile
 * (archived or restored: its events went to the other keyspace while they were read), again on its
 * meta as it is now, up to ATTEMPTS times in all. Whether it moved: `watch` says so where the store is
 * at hand (an archive and a restore within one attempt leave the meta as it was); on a worker thread,
 * a meta that changed says so. A failure of an aggregate that did not move stands.
 */
export async function verifyLatest(
  source: SegmentSource,
  meta: AggregateMeta,
  verify: (meta: AggregateMeta) => Promise<VerifyReport>,
  watch?: () => MoveWatch,
): Promise<VerifyReport> {
  const latest = async () => (await currentMeta(source, meta.aggregate_type, meta.aggregate_id)) ?? meta;
  for (let attempt = 1; ; attempt++) {
    const moves = watch?.();
    const report = await verify(meta);
    if (report.ok || attempt === ATTEMPTS) return report;
    const raced = moves?.raced() ?? false;
    if (raced) await moves!.settled();
    const now = await latest();
    const changed =
      now.archived !== meta.archived ||
      now.version !== meta.version ||
      now.merkle_root !== meta.merkle_root ||
      now.last_snapshot_version !== meta.last_snapshot_version;
    if (!changed && !raced) return report;
    meta = now;
    // Moved under every attempt so far (an archive and restore loop): the last runs where none lands.
    if (raced && attempt === ATTEMPTS - 1 && moves?.alone)
      return moves.alone(async () => verify(await latest()));
  }
}

const sameFrontier = (a: Frontier, b: Frontier): boolean =>
  a.size === b.size &&
  a.nodes.length === b.nodes.length &&
  a.nodes.every((n, i) => n.equals(b.nodes[i] as Buffer));

async function checkState(source: SegmentSource, meta: AggregateMeta, state: Payload) {
  let stored = meta.state;
  if (meta.archived) {
    const full = await source.engine.get('archive', K.metaKey(meta.aggregate_type, meta.aggregate_id));
    if (!full) throw new Bad(meta.version, 'archived state is missing');
    try {
      stored = openMetaAt(source.codec, full, meta.aggregate_type, meta.aggregate_id).state;
    } catch (x) {
      throw new Bad(meta.version, isEventDbxError(x) ? x.message : 'undecodable archived state');
    }
  }
  if (!samePayload(stored, state))
    throw new Bad(meta.version, 'stored state differs from the replay of the events');
}

/** Keys from `gte` up to `lt`, or to the end of `prefix` when there is no `lt`. */
const keyRange = (prefix: Buffer, gte: Buffer, lt: Buffer | undefined) => ({
  gte,
  lt: lt ?? prefixEnd(prefix),
});

/** Whether a stored N or P entry holds exactly these completed nodes (level 0 first). */
export function sameNodes(stored: Buffer | undefined, completed: readonly CompletedNode[]): boolean {
  if (!stored || stored.length !== 32 * completed.length) return false;
  return completed.every((n, i) => n.hash.compare(stored, 32 * i, 32 * i + 32) === 0);
}

/** Check what a snapshot in a later segment left (`SnapshotRest`) against the state before the segment. */
function checkSnapshotRest(snap: SnapshotRest, before: Payload): void {
  const keys = new Set(snap.keys);
  const same =
    Object.entries(snap.rest).every(([k, v]) => Object.hasOwn(before, k) && before[k] === v) &&
    Object.keys(before).every((k) => keys.has(k));
  if (!same) throw snapshotDiffers(snap.version);
}

const snapshotDiffers = (version: number) =>
  new Bad(version, `snapshot at version ${version} differs from the replay of the events`);

/**
 * Checks each snapshot of a segment as the events are verified: it is bound to its key, carries the
 * root of its version, and holds the state at its version (in a segment after the first, the fields
 * the segment set; the rest goes to `conclude`). A snapshot past the last event is reported too.
 */
class SnapshotChecks {
  readonly rests: SnapshotRest[] = [];
  readonly #scan: AsyncIterator<[Buffer, Buffer]>;
  #next: { version: number; value: Buffer } | undefined | null = null;

  constructor(
    private readonly source: SegmentSource,
    private readonly segment: Segment,
  ) {
    const { type, id, to } = segment;
    const from = segment.frontier.size + 1;
    this.#scan = source.engine
      .range(
        segment.space,
        keyRange(
          K.snapshotPrefix(type, id),
          K.snapshotKey(type, id, from),
          to === undefined ? undefined : K.snapshotKey(type, id, to + 1),
        ),
      )
      [Symbol.asyncIterator]();
  }

  async #peek(): Promise<{ version: number; value: Buffer } | undefined> {
    if (this.#next === null) {
      const r = await this.#scan.next();
      this.#next = r.done ? undefined : { version: K.keyVersion(r.value[0]), value: r.value[1] };
    }
    return this.#next;
  }

  /** Whether a snapshot may be stored at or below `version` (none read yet, or the next one is). */
  due(version: number): boolean {
    return this.#next === null || (this.#next !== undefined && this.#next.version <= version);
  }

  /** The event at `version` has been verified: the tree's root and the segment's fold after it. */
  async at(version: number, root: Buffer, state: Payload): Promise<void> {
    for (let next = await this.#peek(); next && next.version <= version; next = await this.#peek()) {
      this.#next = null;
      if (next.version < version)
        throw new Bad(next.version, `snapshot at version ${next.version} has no event`);
      const { type, id } = this.segment;
      let snap;
      try {
        snap = openSnapshotAt(this.source.codec, next.value, type, id, version);
      } catch (x) {
        throw new Bad(version, isEventDbxError(x) ? x.message : 'undecodable snapshot');
      }
      if (snap.merkle_root !== root.toString('hex'))
        throw new Bad(version, `snapshot at version ${version} does not carry the root of that version`);
      if (this.segment.frontier.size === 0) {
        if (!samePayload(snap.state, state)) throw snapshotDiffers(version);
        continue;
      }
      const rest: Record<string, string> = {};
      for (const [k, v] of Object.entries(snap.state)) {
        if (!Object.hasOwn(state, k)) rest[k] = v;
        else if (state[k] !== v) throw snapshotDiffers(version);
      }
      if (Object.keys(state).some((k) => !Object.hasOwn(snap.state, k))) throw snapshotDiffers(version);
      this.rests.push({ version, rest, keys: Object.keys(snap.state) });
    }
  }

  /** Every event is verified up to `last`: a snapshot left is one of a version with no event. */
  async done(last: number): Promise<void> {
    const next = await this.#peek();
    if (next)
      throw new Bad(next.version, `snapshot at version ${next.version} is past the last event (${last})`);
  }

  async close(): Promise<void> {
    await this.#scan.return?.(undefined);
  }
}

/**
 * Checks that each event's ledger entry holds its hash and points back at it, and that its event id's
 * idempotency entry points at it (a retry must find the event, never append it again). Reads are issued as the
 * events are verified (a few chunks in flight, so memory stays bounded) and checked in order.
 */
class LedgerEntryChecks {
  readonly #pending: Array<Promise<void>> = [];
  #part: Array<[number, Buffer, string]> = [];

  constructor(
    private readonly engine: StorageEngine,
    private readonly type: string,
    private readonly id: string,
    private firstVersion: number,
  ) {}

  /** Queue the entry of the next version (called in version order). */
  async add(position: number, leaf: Buffer, eventId: string): Promise<void> {
    this.#part.push([position, leaf, eventId]);
    if (this.#part.length >= 1024) await this.#flush();
  }

  async #flush(): Promise<void> {
    if (this.#part.length === 0) return;
    const part = this.#part;
    const first = this.firstVersion;
    this.#part = [];
    this.firstVersion += part.length;
    const reading = Promise.all([
      this.engine.getMany(
        'main',
        part.map(([p]) => K.positionKey(p)),
      ),
      this.engine.getMany(
        'main',
        part.map(([, , eventId]) => K.idempotencyKey(eventId)),
      ),
    ]);
    this.#pending.push(reading.then(([values, refs]) => this.#check(part, first, values, refs)));
    // The first failing check wins, so failures surface in version order.
    if (this.#pending.length > 4) await this.#pending.shift();
  }

  #check(
    part: Array<[number, Buffer, string]>,
    first: number,
    values: (Buffer | undefined)[],
    refs: (Buffer | undefined)[],
  ): void {
    part.forEach(([p, leaf, eventId], j) => {
      const v = values[j];
      const version = first + j;
      const entry = v && K.decodeLedgerEntry(p, v);
      if (!entry || !entry.leaf.equals(leaf))
        throw new Bad(version, `ledger entry ${p} does not match the event`);
      const { ref } = entry;
      if (ref.type !== this.type || ref.id !== this.id || ref.version !== version) {
        throw new Bad(version, `ledger entry ${p} points elsewhere`);
      }
      const idem = refs[j];
      if (!idem) throw new Bad(version, `the index of event id ${JSON.stringify(eventId)} is missing`);
      const at = K.decodeRef(idem);
      if (at.type !== this.type || at.id !== this.id || at.version !== version) {
        throw new Bad(version, `the index of event id ${JSON.stringify(eventId)} points elsewhere`);
      }
    });
  }

  /** Wait for every check queued so far; throws the first failure. */
  async done(): Promise<void> {
    await this.#flush();
    const failure = await this.settle();
    if (failure !== undefined) throw failure;
  }

  /** Let every check in flight finish (none is left unhandled); the earliest failure, if any. */
  async settle(): Promise<unknown> {
    const results = await Promise.allSettled(this.#pending.splice(0));
    return results.find((r) => r.status === 'rejected')?.reason;
  }
}
