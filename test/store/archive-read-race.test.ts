/**
 * QA-conc finding 3: a read took the aggregate's keyspace from its meta, then read the events, nodes
 * or snapshots there after an archive or restore had moved them: 500 EDBX_ERR_INTEGRITY ("run
 * aggregate verify") or 404 for events that exist. Here the move runs between the read's meta lookup
 * and its first read of the aggregate's data (test/helpers/interrupting-engine.ts), and the read must
 * answer what it answers without the move.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  EventStore,
  aggregateConsistencyProof,
  archiveAggregate,
  eventInclusionProof,
  restoreAggregate,
  verifyAggregate,
  takeSnapshot,
} from '../../src/store/index.js';
import * as K from '../../src/store/keys.js';
import { verifyLatest } from '../../src/store/verify-segment.js';
import { expectCode } from '../helpers/expect.js';
import { type Interrupting, interrupting } from '../helpers/interrupting-engine.js';
import { MemoryEngine } from '../../src/storage/memory/memory-engine.js';
import { RocksDbEngine } from '../../src/storage/rocksdb/rocksdb-engine.js';

const jane = { issuedBy: { group: 'admin', user: 'jane' } };
const tick = (id: string, n: number) => ({
  aggregate_type: 'acct',
  aggregate_id: id,
  event_type: 'tick',
  payload: { n: String(n) },
});

type Read = (store: EventStore) => Promise<unknown>;

/** Every read that picks the aggregate's keyspace, by the name the finding gives it. */
const reads: Record<string, Read> = {
  state: (s) => s.aggregate('acct', 'a-1'),
  'state at version 7': (s) => s.aggregate('acct', 'a-1', { version: 7 }),
  'state at version 15 (from the snapshot)': (s) => s.aggregate('acct', 'a-1', { version: 15 }),
  'state with events': (s) => s.aggregate('acct', 'a-1', { includeEvents: true }),
  events: (s) => s.events('acct', 'a-1', { skip: 2, take: 5 }),
  'event 3': (s) => s.event('acct', 'a-1', 3),
  recent: (s) => s.events('acct', 'a-1', { reverse: true, take: 3 }),
  'proof of event 5': (s) => eventInclusionProof(s, 'acct', 'a-1', 5),
  'consistency 2 to 10': (s) => aggregateConsistencyProof(s, 'acct', 'a-1', 2, 10),
  snapshots: (s) => s.snapshots('acct', 'a-1'),
  // Positions 1..21: later ones are the audit entries the moves append.
  'the log': (s) => s.readLog(1, 21),
};

/** A live aggregate's state is answered from its meta: no data is read, so no move can race it. */
const fromMeta = new Set(['state']);

/** What a read answers, but for whether the aggregate is archived (which the move changes). */
const unarchived = (value: unknown): unknown =>
  value && typeof value === 'object' && 'archived' in value ? { ...value, archived: 'either' } : value;

type Move = (store: EventStore) => Promise<void>;
const archive: Move = async (s) => void (await archiveAggregate(s, 'acct', 'a-1', jane));
const restore: Move = async (s) => void (await restoreAggregate(s, 'acct', 'a-1', jane));

const engines = {
  memory: async () => ({ engine: interrupting(new MemoryEngine()), cleanup: async () => undefined }),
  rocksdb: async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'edbx-archive-race-'));
    return {
      engine: interrupting(new RocksDbEngine(path.join(dir, 'data'))),
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  },
};

for (const [name, make] of Object.entries(engines)) {
  describe(`reads racing aggregate archive and restore on ${name} (qa-conc #3)`, () => {
    let engine: Interrupting;
    let store: EventStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      const made = await make();
      engine = made.engine;
      cleanup = made.cleanup;
      store = await EventStore.open({ engine, now: () => new Date('2026-11-26T10:00:00.000Z') });
      const ticks = (from: number) => Array.from({ length: 10 }, (_, i) => tick('a-1', from + i));
      await store.appendMany(ticks(1), jane);
      await takeSnapshot(store, 'acct', 'a-1', jane);
      await store.appendMany(ticks(11), jane);
      await store.append(tick('a-2', 1), jane);
    });
    afterEach(async () => {
      await store.close();
      await cleanup();
    });

    /**
     * Run `read` with `moves` made between its meta lookup and its reads of the data: the first
     * before its first read, the next before the one after. `reads`: false when it answers without
     * reading any (nothing can come between).
     */
    async function racing(read: Read, moves: Move[], reads = true): Promise<unknown> {
      engine.beforeReads('acct', 'a-1', ...moves.map((move) => () => move(store)));
      const answer = await read(store);
      expect(engine.interruptions).toBe(reads ? moves.length : 0);
      return answer;
    }

    for (const [what, read] of Object.entries(reads)) {
      it(`${what}: archived between the meta lookup and the read, answers as before`, async () => {
        const before = unarchived(await read(store));
        expect(unarchived(await racing(read, [archive], !fromMeta.has(what)))).toEqual(before);
      });

      it(`${what}: restored between the meta lookup and the read, answers as before`, async () => {
        await archive(store);
        const before = unarchived(await read(store));
        expect(unarchived(await racing(read, [restore]))).toEqual(before);
      });

      // Read again in the archive after the first move, where a restore takes it away once more.
      it(`${what}: archived before the read, restored before it is read again, answers as before`, async () => {
        const before = await read(store);
        expect(await racing(read, [archive, restore], !fromMeta.has(what))).toEqual(before);
      });
    }

    it('verify: archived and restored while it reads (its meta then as before), reports no damage', async () => {
      const report = await racing((s) => verifyAggregate(s, 'acct', 'a-1'), [archive, restore]);
      expect(report).toMatchObject({ ok: true, version: 20 });
    });

    it('verify runs again when a move raced it, though the meta is then as before (qa-retest #1)', async () => {
      const meta = (await store.storedMeta('acct', 'a-1'))!.meta;
      const failed = {
        ...(await verifyAggregate(store, 'acct', 'a-1')),
        ok: false,
        reason: 'event 1 is missing',
      };
      const source = { engine, codec: store.env.codec };
      for (const raced of [true, false]) {
        let calls = 0;
        const verify = async () => (++calls === 1 ? failed : verifyAggregate(store, 'acct', 'a-1'));
        const report = await verifyLatest(source, meta, verify, () => ({
          raced: () => raced,
          settled: async () => undefined,
        }));
        // A move under way: verified again. None, and the meta unchanged: the failure stands.
        expect({ raced, calls, ok: report.ok }).toEqual({ raced, calls: raced ? 2 : 1, ok: raced });
      }
      // Raced every time (an archive and restore loop): the last attempt runs where no move lands.
      let alone = false;
      let calls = 0;
      const report = await verifyLatest(
        source,
        meta,
        async () => (++calls, alone ? verifyAggregate(store, 'acct', 'a-1') : failed),
        () => ({
          raced: () => true,
          settled: async () => undefined,
          alone: async (fn) => {
            alone = true;
            return fn();
          },
        }),
      );
      expect({ calls, alone, ok: report.ok }).toEqual({ calls: 5, alone: true, ok: true });
    });

    it('a missing event is still reported while a move of another aggregate races the read', async () => {
      await engine.write([{ type: 'del', space: 'main', key: K.eventKey('acct', 'a-1', 4) }], { sync: true });
      store.clearCache();
      const move = async () => void (await archiveAggregate(store, 'acct', 'a-2', jane));
      const e = await expectCode(
        racing((s) => s.events('acct', 'a-1'), [move]),
        'EDBX_ERR_INTEGRITY',
      );
      expect(e.message).toMatch(/acct\/a-1@4: the event is missing/);
      await expectCode(store.aggregate('acct', 'a-1', { version: 7 }), 'EDBX_ERR_INTEGRITY');
    });

    it('snapshots the meta records but the keyspace lacks are reported, not listed as none', async () => {
      await engine.write([{ type: 'del', space: 'main', key: K.snapshotKey('acct', 'a-1', 10) }], {
        sync: true,
      });
      await expectCode(store.snapshots('acct', 'a-1'), 'EDBX_ERR_INTEGRITY');
    });
  });
}
