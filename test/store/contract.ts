/**
 * Event store contract: the behaviour every storage engine must give the event store. Run by
 * test/store.test.ts against the in-memory engine and RocksDB.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { leafDataOf } from '../../src/core/event.js';
import { leafHash, verifyConsistency, verifyInclusion } from '../../src/core/merkle/index.js';
import type { StorageEngine } from '../../src/storage/engine.js';
import { expectCode } from '../helpers/expect.js';
import * as K from '../../src/store/keys.js';
import {
  AUDIT_ID,
  AUDIT_TYPE,
  EventStore,
  aggregateConsistencyProof,
  archiveAggregate,
  commitStaged,
  eventInclusionProof,
  ledgerConsistencyProof,
  listStaged,
  discardStaged,
  restoreAggregate,
  stageEvent,
  takeSnapshot,
  verifyAggregate,
  verifyAll,
  verifyNamed,
} from '../../src/store/index.js';

export { expectCode };

export type EngineFactory = () => Promise<{
  engine: StorageEngine;
  reopen?: () => StorageEngine;
  cleanup: () => Promise<void>;
}>;

const jane = { issuedBy: { group: 'admin', user: 'jane' } };
const ev = (id: string, event_type: string, payload: Record<string, unknown>, extra: object = {}) => ({
  aggregate_type: 'patient',
  aggregate_id: id,
  event_type,
  payload,
  ...extra,
});

export function storeContract(name: string, factory: EngineFactory): void {
  describe(`event store on ${name}`, () => {
    let store: EventStore;
    let engine: StorageEngine;
    let cleanup: () => Promise<void>;
    let reopen: (() => StorageEngine) | undefined;

    beforeEach(async () => {
      const made = await factory();
      engine = made.engine;
      cleanup = made.cleanup;
      reopen = made.reopen;
      store = await EventStore.open({ engine, now: () => new Date('2026-11-26T10:00:00.000Z') });
    });
    afterEach(async () => {
      await store.close();
      await cleanup();
    });

    it('appends an EventRecord with version, position, leaf hash and root', async () => {
      const e = await store.append(
        ev('p-001', 'patient-added', { name: 'Jane Doe', status: 'active' }),
        jane,
      );
      expect(e).toMatchObject({
        aggregate_type: 'patient',
        aggregate_id: 'p-001',
        event_type: 'patient-added',
        payload: { name: 'Jane Doe', status: 'active' },
        metadata: { created_at: '2026-11-26T10:00:00.000Z', issued_by: { group: 'admin', user: 'jane' } },
        version: 1,
        position: 1,
      });
      expect(e.metadata.event_id).toMatch(/^[0-9a-f-]{36}$/);
      // Anyone can recompute the leaf from the record as served; a one-leaf tree's root is the leaf.
      expect(e.hash).toBe(leafHash(leafDataOf(e)).toString('hex'));
      expect(e.merkle_root).toBe(e.hash);
      const e2 = await store.append(ev('p-001', 'patient-updated', { status: 'inactive' }), jane);
      expect(e2.version).toBe(2);
      expect(e2.position).toBe(2);
      expect(e2.merkle_root).not.toBe(e.merkle_root);
    });

    it('folds payloads into state and rebuilds state at any version', async () => {
      await store.append(ev('p-1', 'patient-added', { name: 'Jane', status: 'active' }), jane);
      await store.append(ev('p-1', 'patient-updated', { status: 'inactive', ward: '3' }), jane);
      await store.append(ev('p-1', 'patient-updated', { ward: '4' }), jane);
      expect((await store.aggregate('patient', 'p-1')).state).toEqual({
        name: 'Jane',
        status: 'inactive',
        ward: '4',
      });
      const v2 = await store.aggregate('patient', 'p-1', { version: 2, includeEvents: true });
      expect(v2.state).toEqual({ name: 'Jane', status: 'inactive', ward: '3' });
      expect(v2.events?.map((e) => e.version)).toEqual([1, 2]);
      await expectCode(store.aggregate('patient', 'p-1', { version: 4 }), 'EDBX_ERR_EVENT_NOT_FOUND');
      await expectCode(store.aggregate('patient', 'p-1', { version: 0 }), 'EDBX_ERR_INVALID_VERSION');
      await expectCode(store.aggregate('patient', 'nobody'), 'EDBX_ERR_AGGREGATE_NOT_FOUND');
    });

    it('stores numbers and booleans as strings and refuses objects, arrays and null naming the field', async () => {
      const e = await store.append(ev('p-1', 'measured', { weight: 72.5, alive: true }), jane);
      expect(e.payload).toEqual({ weight: '72.5', alive: 'true' });
      for (const bad of [{ a: { x: 1 } }, { a: [1] }, { a: null }]) {
        const error = await expectCode(
          store.append(ev('p-1', 'measured', bad), jane),
          'EDBX_ERR_INVALID_FIELD_VALUE',
        );
        expect(error.message).toContain('"a"');
      }
      await expectCode(store.append(ev('p-1', 'measured', [] as never), jane), 'EDBX_ERR_INVALID_PAYLOAD');
      expect(store.size).toBe(1);
    });

    it('limits payload size', async () => {
      const small = await EventStore.open({ engine, maxPayloadBytes: 2048 });
      await expectCode(
        small.append(ev('p-1', 'big', { x: 'y'.repeat(4096) }), jane),
        'EDBX_ERR_PAYLOAD_TOO_LARGE',
      );
      expect(small.size).toBe(0);
    });

    // QA-scale finding 3: each append rewrites the whole state, so an unbounded state made appends
    // ever slower (101 ms to 1.3 s by 76 MB). State sizes count as payloads do: 2 + per field
    // name + value + 6 bytes.
    it('refuses an append that would grow a state past max_state_bytes, writing nothing', async () => {
      const small = await EventStore.open({ engine, maxStateBytes: 2048 });
      await small.append(ev('p-1', 'noted', { x: 'a'.repeat(1000) }), jane); // 1009 bytes
      const error = await expectCode(
        small.append(ev('p-1', 'noted', { y: 'b'.repeat(1200) }), jane), // 1009 + 1207
        'EDBX_ERR_STATE_TOO_LARGE',
      );
      expect(error.message).toContain('patient/p-1');
      expect(error.message).toContain('2216 bytes');
      expect(error.message).toContain('2048 bytes');
      expect(error.message).toContain('start a new aggregate');
      expect(small.size).toBe(1);
      const after = await small.aggregate('patient', 'p-1');
      expect(after.version).toBe(1);
      expect(Object.keys(after.state)).toEqual(['x']);
      // Up to the limit exactly is allowed; one byte more is not.
      await small.append(ev('p-1', 'noted', { z: 'c'.repeat(1000) }), jane); // 2016
      await small.append(ev('p-1', 'noted', { w: 'd'.repeat(25) }), jane); // 2048
      await expectCode(
        small.append(ev('p-1', 'noted', { w: 'd'.repeat(26) }), jane),
        'EDBX_ERR_STATE_TOO_LARGE',
      );
      await expectCode(
        small.append(ev('p-2', 'noted', { v: 'e'.repeat(2040) }), jane),
        'EDBX_ERR_STATE_TOO_LARGE',
      );
      expect(small.size).toBe(3);
      expect((await small.aggregate('patient', 'p-1')).version).toBe(3);
      await expectCode(small.aggregate('patient', 'p-2'), 'EDBX_ERR_AGGREGATE_NOT_FOUND');
    });

    it('refuses a whole transaction when one of its events would grow a state past the limit', async () => {
      const small = await EventStore.open({ engine, maxStateBytes: 2048 });
      await expectCode(
        small.appendMany(
          [ev('p-2', 'noted', { a: 'ok' }), ev('p-1', 'noted', { x: 'a'.repeat(3000) })],
          jane,
        ),
        'EDBX_ERR_STATE_TOO_LARGE',
      );
      // Two events each under the limit, together over it on one aggregate.
      await expectCode(
        small.appendMany(
          [ev('p-1', 'noted', { x: 'a'.repeat(1500) }), ev('p-1', 'noted', { y: 'b'.repeat(1500) })],
          jane,
        ),
        'EDBX_ERR_STATE_TOO_LARGE',
      );
      expect(small.size).toBe(0);
      await expectCode(small.aggregate('patient', 'p-1'), 'EDBX_ERR_AGGREGATE_NOT_FOUND');
      await expectCode(small.aggregate('patient', 'p-2'), 'EDBX_ERR_AGGREGATE_NOT_FOUND');
      const ok = await small.appendMany(
        [ev('p-1', 'noted', { x: 'a'.repeat(900) }), ev('p-1', 'noted', { y: 'b'.repeat(900) })],
        jane,
      );
      expect(ok.map((r) => r.version)).toEqual([1, 2]);
    });

    it('keeps an aggregate already over a lowered limit readable, taking appends that do not grow it', async () => {
      await store.append(ev('p-1', 'noted', { x: 'a'.repeat(3000), y: 'b'.repeat(100) }), jane); // 3116
      const small = await EventStore.open({ engine, maxStateBytes: 2048 });
      expect((await small.aggregate('patient', 'p-1')).state.x).toHaveLength(3000);
      await expectCode(small.append(ev('p-1', 'noted', { z: '1' }), jane), 'EDBX_ERR_STATE_TOO_LARGE');
      await expectCode(
        small.append(ev('p-1', 'noted', { y: 'c'.repeat(101) }), jane),
        'EDBX_ERR_STATE_TOO_LARGE',
      );
      await small.append(ev('p-1', 'noted', { y: 'c'.repeat(100) }), jane); // same size
      await small.append(ev('p-1', 'noted', { x: 'short' }), jane); // shrinks to 125
      await small.append(ev('p-1', 'noted', { z: 'd'.repeat(1000) }), jane); // grows, under the limit
      expect((await small.aggregate('patient', 'p-1')).version).toBe(4);
    });

    it('bounds states at 16 MiB by default', async () => {
      const big = await EventStore.open({ engine, maxPayloadBytes: 8_000_100 });
      const field = 'f'.repeat(8_000_000);
      await big.append(ev('p-1', 'noted', { a: field }), jane);
      await big.append(ev('p-1', 'noted', { b: field }), jane); // 16,000,016 bytes
      await expectCode(
        big.append(ev('p-1', 'noted', { c: 'g'.repeat(800_000) }), jane),
        'EDBX_ERR_STATE_TOO_LARGE',
      );
      expect(big.size).toBe(2);
    });

    it('validates names with coded errors naming the bad value', async () => {
      const code0 = 'EDBX_ERR_INVALID_AGGREGATE_ID';
      const cases: Array<[object, string, string]> = [
        [{ aggregate_type: 'Patient' }, 'EDBX_ERR_INVALID_AGGREGATE_TYPE', 'Patient'],
        [{ aggregate_type: 'a'.repeat(65) }, 'EDBX_ERR_INVALID_AGGREGATE_TYPE', 'aaa'],
        [{ aggregate_id: '' }, 'EDBX_ERR_INVALID_AGGREGATE_ID', '""'],
        [{ aggregate_id: 'a/b' }, 'EDBX_ERR_INVALID_AGGREGATE_ID', 'a/b'],
        [{ aggregate_id: 'a\u0000b' }, 'EDBX_ERR_INVALID_AGGREGATE_ID', 'a\\u0000b'],
        [{ aggregate_id: 'x'.repeat(129) }, 'EDBX_ERR_INVALID_AGGREGATE_ID', 'xxx'],
        [{ aggregate_id: '😀'.repeat(129) }, 'EDBX_ERR_INVALID_AGGREGATE_ID', '😀'],
        [{ payload: { note: 'a\u0000b' } }, 'EDBX_ERR_INVALID_FIELD_VALUE', 'note'],
        [{ payload: { note: 'lone \ud800 half' } }, 'EDBX_ERR_INVALID_FIELD_VALUE', 'note'],
        [{ payload: { ['f'.repeat(129)]: 'x' } }, 'EDBX_ERR_INVALID_FIELD_NAME', 'fff'],
        [{ event_type: 'Added!' }, 'EDBX_ERR_INVALID_EVENT_TYPE', 'Added!'],
        [{ aggregate_type: '$audit' }, 'EDBX_ERR_INVALID_AGGREGATE_TYPE', '$audit'],
        // Ids no URL can address, and ids that look like another id.
        [{ aggregate_id: '.' }, 'EDBX_ERR_INVALID_AGGREGATE_ID', '"."'],
        [{ aggregate_id: '..' }, 'EDBX_ERR_INVALID_AGGREGATE_ID', '".."'],
        [{ aggregate_id: ' p-1 ' }, 'EDBX_ERR_INVALID_AGGREGATE_ID', '" p-1 "'],
        [{ aggregate_id: ' ' }, 'EDBX_ERR_INVALID_AGGREGATE_ID', '" "'],
        [{ aggregate_id: 'p-\u200b1' }, 'EDBX_ERR_INVALID_AGGREGATE_ID', '"p-\\u200b1"'],
        [{ aggregate_id: '\u202ep-1' }, 'EDBX_ERR_INVALID_AGGREGATE_ID', '"\\u202ep-1"'],
        [{ aggregate_id: 'p\u007f1' }, 'EDBX_ERR_INVALID_AGGREGATE_ID', '"p\\u007f1"'],
        [{ aggregate_id: 'p\u061c1' }, 'EDBX_ERR_INVALID_AGGREGATE_ID', '"p\\u061c1"'],
        [{ aggregate_id: 'p\u31641' }, 'EDBX_ERR_INVALID_AGGREGATE_ID', '"p\\u31641"'],
        [{ aggregate_id: 'p-1\ufe0f' }, 'EDBX_ERR_INVALID_AGGREGATE_ID', '"p-1\\ufe0f"'],
        [{ aggregate_id: '\u00a0p-1' }, 'EDBX_ERR_INVALID_AGGREGATE_ID', '"\\u00a0p-1"'],
        [{ aggregate_id: 'p\u{e0001}' }, 'EDBX_ERR_INVALID_AGGREGATE_ID', '"p\\u{e0001}"'],
        [{ payload: JSON.parse('{"__proto__":"x"}') }, 'EDBX_ERR_INVALID_FIELD_NAME', '__proto__'],
      ];
      for (const [override, code, shown] of cases) {
        const error = await expectCode(
          store.append({ ...ev('p-1', 'added', { a: '1' }), ...override }, jane),
          code,
        );
        expect(error.message).toContain(shown);
      }
      // However long the bad value, the message stays one short line.
      const long = await expectCode(store.append(ev('/'.repeat(100_000), 'added', {}), jane), code0);
      expect(long.message.length).toBeLessThan(300);
      expect(long.message).toContain('(100000 characters)');
      const ok = await store.append(ev('ünï code id ✓', 'added', {}), jane);
      expect(ok.aggregate_id).toBe('ünï code id ✓');
      // 128 code points is the limit, however many UTF-16 units they take.
      const wide = await store.append(ev('😀'.repeat(128), 'added', { note: 'pair \ud83d\ude00 ok' }), jane);
      expect(wide.payload.note).toBe('pair 😀 ok');
      expect(store.size).toBe(2);
    });

    it('optimistic concurrency: a version mismatch is a conflict that writes nothing', async () => {
      await store.append(ev('p-1', 'added', {}, { expected_version: 0 }), jane);
      await expectCode(
        store.append(ev('p-1', 'added', {}, { expected_version: 0 }), jane),
        'EDBX_ERR_VERSION_CONFLICT',
      );
      const e = await expectCode(
        store.append(ev('p-1', 'x', {}, { expected_version: 5 }), jane),
        'EDBX_ERR_VERSION_CONFLICT',
      );
      expect(e.params).toMatchObject({ expected: 5, actual: 1 });
      await store.append(ev('p-1', 'updated', {}, { expected_version: 1 }), jane);
      expect((await store.aggregate('patient', 'p-1')).version).toBe(2);
      expect(store.size).toBe(2);
    });

    it('idempotency: retrying the same event id returns the original; a different event under it conflicts', async () => {
      const first = await store.append(ev('p-1', 'added', { a: '1' }, { event_id: 'client-1' }), jane);
      const again = await store.append(ev('p-1', 'added', { a: '1' }, { event_id: 'client-1' }), jane);
      expect(again).toEqual(first);
      const concurrent = await Promise.all(
        Array.from({ length: 10 }, () =>
          store.append(ev('p-2', 'added', { b: '2' }, { event_id: 'client-2' }), jane),
        ),
      );
      expect(new Set(concurrent.map((r) => r.position)).size).toBe(1);
      await expectCode(
        store.append(ev('p-1', 'added', { a: 'other' }, { event_id: 'client-1' }), jane),
        'EDBX_ERR_EVENT_ID_CONFLICT',
      );
      await expectCode(
        store.append(ev('p-9', 'added', { a: '1' }, { event_id: 'client-1' }), jane),
        'EDBX_ERR_EVENT_ID_CONFLICT',
      );
      // The same event from someone else is not their retry: they are not told it succeeded.
      const bob = { issuedBy: { group: 'admin', user: 'bob' } };
      const other = await expectCode(
        store.append(ev('p-1', 'added', { a: '1' }, { event_id: 'client-1' }), bob),
        'EDBX_ERR_EVENT_ID_CONFLICT',
      );
      expect(other.message).toContain('by someone else');
      expect(store.size).toBe(2);
    });

    it('a retried transaction returns its events; one mixing appended events with new ones is refused whole', async () => {
      const tx = [
        ev('t-1', 'added', { a: '1' }, { event_id: 'tx-a' }),
        ev('t-2', 'added', { b: '1' }, { event_id: 'tx-b' }),
      ];
      const first = await store.appendMany(tx, jane);
      expect(await store.appendMany(tx, jane)).toEqual(first);
      const mixed = await expectCode(
        store.appendMany([tx[0]!, ev('t-3', 'added', {}, { event_id: 'tx-c' })], jane),
        'EDBX_ERR_EVENT_ID_CONFLICT',
      );
      expect(mixed.message).toContain('"tx-a"');
      expect(store.size).toBe(2);
      await expectCode(store.aggregate('patient', 't-3'), 'EDBX_ERR_AGGREGATE_NOT_FOUND');
    });

    it('appendMany is atomic across aggregates: one refused event writes nothing', async () => {
      await store.append(ev('a', 'added', {}), jane);
      await expectCode(
        store.appendMany(
          [ev('b', 'added', {}), ev('c', 'added', {}), ev('a', 'x', {}, { expected_version: 0 })],
          jane,
        ),
        'EDBX_ERR_VERSION_CONFLICT',
      );
      expect(store.size).toBe(1);
      await expectCode(store.aggregate('patient', 'b'), 'EDBX_ERR_AGGREGATE_NOT_FOUND');
      const ok = await store.appendMany(
        [ev('b', 'added', {}), ev('c', 'added', {}), ev('b', 'updated', {})],
        jane,
      );
      expect(ok.map((e) => [e.aggregate_id, e.version, e.position])).toEqual([
        ['b', 1, 2],
        ['c', 1, 3],
        ['b', 2, 4],
      ]);
      await expectCode(store.appendMany([], jane), 'EDBX_ERR_EMPTY_TRANSACTION');
      await expectCode(
        store.appendMany([ev('d', 'a', {}, { event_id: 'x' }), ev('e', 'a', {}, { event_id: 'x' })], jane),
        'EDBX_ERR_DUPLICATE_EVENT_ID',
      );
    });

    it('group commit: concurrent appends share batches and stay gap-free and ordered', async () => {
      const before = store.writerStats.batches;
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) => store.append(ev(`p-${i % 7}`, 'tick', { i }), jane)),
      );
      const batches = store.writerStats.batches - before;
      expect(batches).toBeLessThan(200);
      expect(results.map((r) => r.position).sort((a, b) => a - b)).toEqual(
        Array.from({ length: 200 }, (_, i) => i + 1),
      );
      for (let a = 0; a < 7; a++) {
        const versions = (await store.events('patient', `p-${a}`)).map((e) => e.version);
        expect(versions).toEqual(Array.from({ length: versions.length }, (_, i) => i + 1));
      }
      const log = await store.readLog(1, 500);
      expect(log.map((e) => e.position)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    });

    it('scanLog opens only the events its filter keeps (archived ones too) and says where to go on', async () => {
      for (let i = 0; i < 6; i++) await store.append(ev(`p-${i % 3}`, 'tick', { n: String(i) }), jane);
      await archiveAggregate(store, 'patient', 'p-1', jane); // an audit entry at position 7
      const all = await store.readLog(1, 100);
      const seen: string[] = [];
      const page = await store.scanLog(0, 5, (r) => {
        seen.push(`${r.type}/${r.id}@${r.version}`);
        return r.id === 'p-1';
      });
      expect(seen).toEqual(all.slice(0, 5).map((e) => `${e.aggregate_type}/${e.aggregate_id}@${e.version}`));
      expect(page.next).toBe(6);
      expect(page.records).toEqual(all.filter((e) => e.position <= 5 && e.aggregate_id === 'p-1'));
      const rest = await store.scanLog(page.next, 100, (r) => r.type === AUDIT_TYPE || r.id === 'p-1');
      expect(rest.next).toBe(store.size + 1);
      expect(rest.records).toEqual(all.filter((e) => e.aggregate_type === AUDIT_TYPE));
      expect(rest.records.map((e) => e.position)).toEqual([7]);
      // Past the end: nothing examined, the same position to go on from.
      expect(await store.scanLog(store.size + 1, 10, () => true)).toEqual({
        records: [],
        next: store.size + 1,
      });
      // A position missing from the ledger is refused, even where the filter would skip it.
      await del(K.positionKey(3));
      await expectCode(
        store.scanLog(1, 10, () => false),
        'EDBX_ERR_INTEGRITY',
      );
    });

    it('a failed job in a batch does not disturb the jobs batched with it', async () => {
      const outcomes = await Promise.allSettled([
        store.append(ev('p-1', 'a', {}), jane),
        store.append(ev('p-1', 'b', {}, { expected_version: 7 }), jane),
        store.append(ev('p-1', 'c', {}), jane),
      ]);
      expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect((await store.events('patient', 'p-1')).map((e) => [e.version, e.event_type])).toEqual([
        [1, 'a'],
        [2, 'c'],
      ]);
      expect((await verifyAll(store)).ok).toBe(true);
    });

    it('inclusion and consistency proofs verify against the aggregate root', async () => {
      for (let i = 0; i < 23; i++) await store.append(ev('p-1', 'tick', { i }), jane);
      const head = await store.aggregate('patient', 'p-1');
      for (let v = 1; v <= 23; v++) {
        const p = await eventInclusionProof(store, 'patient', 'p-1', v);
        expect(p.tree_size).toBe(23);
        expect(p.root).toBe(head.merkle_root);
        const ok = verifyInclusion(
          Buffer.from(p.leaf_hash, 'hex'),
          p.leaf_index,
          p.tree_size,
          p.audit_path.map((h) => Buffer.from(h, 'hex')),
          Buffer.from(p.root, 'hex'),
        );
        expect(ok).toBe(true);
        const older = await eventInclusionProof(store, 'patient', 'p-1', v, 23 - (23 - v));
        expect(older.root).toBe((await store.event('patient', 'p-1', v)).merkle_root);
      }
      for (let m = 1; m <= 23; m++) {
        const c = await aggregateConsistencyProof(store, 'patient', 'p-1', m);
        expect(c.first_root).toBe((await store.event('patient', 'p-1', m)).merkle_root);
        expect(
          verifyConsistency(
            m,
            23,
            Buffer.from(c.first_root, 'hex'),
            Buffer.from(c.second_root, 'hex'),
            c.consistency_path.map((h) => Buffer.from(h, 'hex')),
          ),
        ).toBe(true);
      }
      await expectCode(eventInclusionProof(store, 'patient', 'p-1', 24), 'EDBX_ERR_EVENT_NOT_FOUND');
      await expectCode(eventInclusionProof(store, 'patient', 'p-1', 5, 4), 'EDBX_ERR_INVALID_PROOF_RANGE');
      await expectCode(
        aggregateConsistencyProof(store, 'patient', 'p-1', 9, 3),
        'EDBX_ERR_INVALID_PROOF_RANGE',
      );
      const l = await ledgerConsistencyProof(store, 5);
      expect(l.second_root).toBe(store.ledgerHead().root);
    });

    it('verify recomputes from events and names the first bad version after a stored byte changes', async () => {
      for (let i = 0; i < 10; i++) await store.append(ev('p-1', 'tick', { i: `value-${i}` }), jane);
      expect((await verifyAggregate(store, 'patient', 'p-1')).ok).toBe(true);
      const key = K.eventKey('patient', 'p-1', 6);
      const stored = (await engine.get('main', key))!;
      const tampered = Buffer.from(stored);
      tampered.write('X', stored.indexOf('value-5') + 'value-'.length, 'latin1');
      expect(tampered.equals(stored)).toBe(false);
      await engine.write([{ type: 'put', space: 'main', key, value: tampered }], { sync: true });
      const r = await verifyAggregate(store, 'patient', 'p-1');
      expect(r).toMatchObject({ ok: false, first_bad_version: 6 });
      expect(r.reason).toMatch(/hash/);
      expect((await verifyAll(store)).ok).toBe(false);
    });

    it('verify reports no damage while writes go on: appends, new aggregates, archive and restore', async () => {
      for (let i = 0; i < 20; i++) await store.append(ev('hot', 'tick', { i }), jane);
      await store.append(ev('cold', 'tick', {}), jane);
      let writing = true;
      const writers = [
        (async () => {
          for (let i = 0; writing; i++) await store.append(ev('hot', 'tick', { i }), jane);
        })(),
        (async () => {
          for (let i = 0; writing; i++) await store.append(ev(`new-${i}`, 'tick', { i }), jane);
        })(),
        (async () => {
          while (writing) {
            await archiveAggregate(store, 'patient', 'cold', jane);
            await restoreAggregate(store, 'patient', 'cold', jane);
          }
        })(),
      ];
      const reports = [];
      try {
        for (let round = 0; round < 8; round++) {
          reports.push(await verifyAggregate(store, 'patient', 'hot'));
          reports.push(await verifyAggregate(store, 'patient', 'cold'));
          const all = await verifyAll(store);
          reports.push(...all.failures, { ...all.ledger, aggregate_id: 'ledger' });
        }
      } finally {
        writing = false;
        await Promise.all(writers);
      }
      expect(reports.filter((r) => !r.ok)).toEqual([]);
      expect((await store.meta('patient', 'hot'))!.meta.version).toBeGreaterThan(20);
      // Damage is still damage: a meta rolled back behind its events is reported, writes or not.
      const before = (await engine.get('main', K.metaKey('patient', 'hot')))!;
      const version = (await store.meta('patient', 'hot'))!.meta.version;
      await store.append(ev('hot', 'tick', {}), jane);
      await engine.write([{ type: 'put', space: 'main', key: K.metaKey('patient', 'hot'), value: before }], {
        sync: true,
      });
      store.clearCache();
      expect(await verifyAggregate(store, 'patient', 'hot')).toMatchObject({
        ok: false,
        first_bad_version: version + 1,
        reason: `aggregate records version ${version} but event ${version + 1} is stored`,
      });
      expect((await verifyAll(store)).ok).toBe(false);
    });

    it('verify names the version whose stored Merkle node entry was altered or extended', async () => {
      for (let i = 0; i < 4; i++) await store.append(ev('p-1', 'tick', { i }), jane);
      const key = K.nodeKey('patient', 'p-1', 2);
      const stored = (await engine.get('main', key))!;
      expect(stored.length).toBe(64); // version 2 completes the leaf and the node above it
      const extended = Buffer.concat([stored, Buffer.alloc(32)]);
      await engine.write([{ type: 'put', space: 'main', key, value: extended }], { sync: true });
      expect(await verifyAggregate(store, 'patient', 'p-1')).toMatchObject({
        ok: false,
        first_bad_version: 2,
      });
      const flipped = Buffer.from(stored);
      flipped[40]! ^= 1;
      await engine.write([{ type: 'put', space: 'main', key, value: flipped }], { sync: true });
      expect(await verifyAggregate(store, 'patient', 'p-1')).toMatchObject({
        ok: false,
        first_bad_version: 2,
      });
    });

    it('verify catches a rewritten history (event, hash and root recomputed) through the ledger', async () => {
      for (let i = 0; i < 4; i++) await store.append(ev('p-1', 'tick', { i }), jane);
      await store.append(ev('p-2', 'tick', {}), jane);
      // Delete a whole aggregate: its own tree cannot notice, the store-wide ledger must.
      const ops = [];
      for (const prefix of [K.eventPrefix('patient', 'p-2'), K.nodePrefix('patient', 'p-2')]) {
        for await (const [k] of engine.range('main', {
          gte: prefix,
          lt: Buffer.concat([prefix, Buffer.from([0xff])]),
        }))
          ops.push({ type: 'del' as const, space: 'main' as const, key: k });
      }
      ops.push({ type: 'del' as const, space: 'main' as const, key: K.metaKey('patient', 'p-2') });
      await engine.write(ops, { sync: true });
      store.clearCache();
      const all = await verifyAll(store);
      expect(all.ok).toBe(false);
      expect(all.ledger.ok).toBe(false);
    });

    it('snapshots: manual and automatic, and state rebuilds start from the nearest one', async () => {
      await store.setSnapshotThreshold('patient', 3, jane);
      for (let i = 1; i <= 7; i++) await store.append(ev('p-1', 'tick', { [`f${i}`]: String(i) }), jane);
      const snaps = await store.snapshots('patient', 'p-1');
      expect(snaps.map((s) => s.version)).toEqual([3, 6]);
      await takeSnapshot(store, 'patient', 'p-1', jane, 'before migration');
      expect((await store.snapshots('patient', 'p-1')).at(-1)).toMatchObject({
        version: 7,
        comment: 'before migration',
      });
      // Break event 2: a state at version 4 is still served because it starts from the snapshot at 3.
      const key = K.eventKey('patient', 'p-1', 2);
      await engine.write([{ type: 'put', space: 'main', key, value: Buffer.from([0, 0x7b]) }], {
        sync: true,
      });
      expect((await store.aggregate('patient', 'p-1', { version: 4 })).state).toEqual({
        f1: '1',
        f2: '2',
        f3: '3',
        f4: '4',
      });
      await expectCode(store.aggregate('patient', 'p-1', { version: 2 }), 'EDBX_ERR_INTEGRITY');
      await expectCode(store.setSnapshotThreshold('patient', -1, jane), 'EDBX_ERR_INVALID_ARGUMENT');
    });

    it('a state at a past version rebuilt from a snapshot carries the time of its event, not of the snapshot', async () => {
      let ms = Date.parse('2026-01-01T00:00:00Z');
      const clocked = await EventStore.open({ engine, now: () => new Date(ms) });
      const first = await clocked.append(ev('p-9', 'tick', { a: '1' }), jane);
      ms += 60_000;
      await takeSnapshot(clocked, 'patient', 'p-9', jane);
      ms += 60_000;
      await clocked.setSnapshotThreshold('patient', 1, jane);
      const second = await clocked.append(ev('p-9', 'tick', { a: '2' }), jane); // automatic snapshot at 2
      ms += 60_000;
      await clocked.append(ev('p-9', 'tick', { a: '3' }), jane);
      expect((await clocked.snapshots('patient', 'p-9')).map((s) => s.version)).toEqual([1, 2, 3]);
      for (const e of [first, second]) {
        expect(await clocked.aggregate('patient', 'p-9', { version: e.version })).toMatchObject({
          version: e.version,
          updated_at: e.metadata.created_at,
          merkle_root: e.merkle_root,
        });
      }
    });

    it('an event record copied onto the key of another version is never served as that event', async () => {
      for (let i = 1; i <= 4; i++) await store.append(ev('p-1', 'tick', { n: String(i) }), jane);
      const v1 = await engine.get('main', K.eventKey('patient', 'p-1', 1));
      await engine.write([{ type: 'put', space: 'main', key: K.eventKey('patient', 'p-1', 4), value: v1! }], {
        sync: true,
      });
      await expectCode(store.event('patient', 'p-1', 4), 'EDBX_ERR_INTEGRITY');
      await expectCode(store.events('patient', 'p-1'), 'EDBX_ERR_INTEGRITY');
      await expectCode(store.events('patient', 'p-1', { reverse: true, take: 1 }), 'EDBX_ERR_INTEGRITY');
      await expectCode(store.readLog(1, 10), 'EDBX_ERR_INTEGRITY');
      // Versions below the damage still read.
      expect((await store.events('patient', 'p-1', { take: 3 })).map((e) => e.version)).toEqual([1, 2, 3]);
    });

    // Tampering through the engine (what someone with the files but not the keys can do): values
    // copied, swapped, rolled back or removed are refused by reads and reported by verify.
    const put = (key: Buffer, value: Buffer, space: 'main' | 'archive' = 'main') =>
      engine.write([{ type: 'put', space, key, value }], { sync: true });
    const del = (key: Buffer) => engine.write([{ type: 'del', space: 'main', key }], { sync: true });
    const stored = async (key: Buffer) => (await engine.get('main', key))!;
    const failed = async (id: string) => {
      const r = await verifyAggregate(store, 'patient', id);
      expect(r.ok, `verify of ${id}`).toBe(false);
      expect(r).toMatchObject({ aggregate_type: 'patient', aggregate_id: id });
      return r;
    };

    it('a meta copied or swapped onto another aggregate is never served or verified as it', async () => {
      for (let i = 1; i <= 3; i++) await store.append(ev('p-1', 'tick', { who: 'one', n: i }), jane);
      for (let i = 1; i <= 3; i++) await store.append(ev('p-2', 'tick', { who: 'two', n: i }), jane);
      const [m1, m2] = [await stored(K.metaKey('patient', 'p-1')), await stored(K.metaKey('patient', 'p-2'))];
      await put(K.metaKey('patient', 'p-1'), m2);
      await put(K.metaKey('patient', 'p-2'), m1);
      store.clearCache();
      const size = store.size;
      await expectCode(store.aggregate('patient', 'p-1'), 'EDBX_ERR_INTEGRITY');
      await expectCode(store.events('patient', 'p-2'), 'EDBX_ERR_INTEGRITY');
      await expectCode(store.list(), 'EDBX_ERR_INTEGRITY');
      await expectCode(store.append(ev('p-1', 'tick', { n: 4 }), jane), 'EDBX_ERR_INTEGRITY');
      expect(store.size).toBe(size);
      expect((await failed('p-1')).reason).toContain('patient/p-2');
      const all = await verifyAll(store);
      expect(all.ok).toBe(false);
      expect(all.failures.map((f) => f.aggregate_id)).toEqual(['p-1', 'p-2']);
    });

    it('an aggregate deleted whole, another meta copied onto its key, fails verify of everything', async () => {
      for (let i = 1; i <= 3; i++) await store.append(ev('p-2', 'tick', { n: i }), jane);
      for (let i = 1; i <= 3; i++) await store.append(ev('p-3', 'tick', { n: i }), jane);
      expect((await verifyAll(store)).ok).toBe(true);
      for (let v = 1; v <= 3; v++) {
        await del(K.eventKey('patient', 'p-2', v));
        await del(K.nodeKey('patient', 'p-2', v));
      }
      await put(K.metaKey('patient', 'p-2'), await stored(K.metaKey('patient', 'p-3')));
      store.clearCache();
      const all = await verifyAll(store);
      expect(all.ok).toBe(false);
      expect(all.failures.map((f) => f.aggregate_id)).toEqual(['p-2']);
      expect(all.ledger.ok).toBe(false); // p-2's three ledger entries point at events no meta holds
    });

    it('verify of everything names the ledger entry of a newest event removed with its meta put back (pen-test #2)', async () => {
      await store.setSnapshotThreshold('patient', 50, jane); // an audit-log entry first: the system aggregate holds it
      await store.append(ev('p-1', 'tick', { n: 1 }), jane);
      await store.append(ev('p-1', 'tick', { n: 2 }), jane);
      const metaAtTwo = await stored(K.metaKey('patient', 'p-1'));
      const third = await store.append(ev('p-1', 'tick', { n: 3 }), jane);
      await store.append(ev('p-2', 'tick', {}), jane);
      // Without keys: the newest event's keys removed, the meta of version 2 put back.
      await del(K.eventKey('patient', 'p-1', 3));
      await del(K.nodeKey('patient', 'p-1', 3));
      await del(K.idempotencyKey(third.metadata.event_id));
      await put(K.metaKey('patient', 'p-1'), metaAtTwo);
      store.clearCache();
      expect((await verifyAll(store)).ledger).toMatchObject({
        ok: false,
        first_bad_position: third.position,
        reason: `ledger entry ${third.position} points at patient/p-1@3, which the store does not hold (removed, with its aggregate's meta put back?)`,
      });
      // Another event written under the version removed: the entry of the removed one is still named.
      const replaced = await store.append(ev('p-1', 'tick', { n: 'other' }), jane);
      expect(replaced.version).toBe(3);
      store.clearCache();
      expect((await verifyAll(store)).ledger).toMatchObject({
        ok: false,
        first_bad_position: third.position,
        reason: `ledger entry ${third.position} points at patient/p-1@3, but that event is at position ${replaced.position}: the event the entry was written for was replaced`,
      });
    });

    it('verify of everything names the aggregate whose meta was removed', async () => {
      await store.append(ev('p-0', 'tick', {}), jane);
      for (let i = 1; i <= 3; i++) await store.append(ev('p-1', 'tick', { n: i }), jane);
      await del(K.metaKey('patient', 'p-1'));
      store.clearCache();
      const all = await verifyAll(store);
      expect(all.ok).toBe(false);
      expect(all.ledger).toMatchObject({
        ok: false,
        first_bad_position: 2,
        reason: 'ledger entry 2 points at patient/p-1@1, an aggregate with no meta (removed?)',
      });
      // Named alone, it is damage too, never "not found".
      await expectCode(store.aggregate('patient', 'p-1'), 'EDBX_ERR_INTEGRITY');
      expect(await verifyNamed(store, 'patient', 'p-1')).toMatchObject({
        ok: false,
        reason: 'its meta is missing but its events are stored',
      });
      await expectCode(verifyNamed(store, 'patient', 'nobody'), 'EDBX_ERR_AGGREGATE_NOT_FOUND');
      await expectCode(verifyNamed(store, 'Bad Type', 'x'), 'EDBX_ERR_INVALID_AGGREGATE_TYPE');
    });

    it('a snapshot is used and verified only at its own key, with the root of its version', async () => {
      for (let i = 1; i <= 6; i++) {
        await store.append(ev('p-1', 'tick', { n: i, [`f${i % 2}`]: `v${i}` }), jane);
        if (i === 3 || i === 6) await takeSnapshot(store, 'patient', 'p-1', jane);
      }
      for (let i = 1; i <= 3; i++) await store.append(ev('p-2', 'tick', { n: `other-${i}` }), jane);
      await takeSnapshot(store, 'patient', 'p-2', jane);
      const at4 = await store.aggregate('patient', 'p-1', { version: 4 });
      expect((await verifyAggregate(store, 'patient', 'p-1')).ok).toBe(true);
      const own3 = await stored(K.snapshotKey('patient', 'p-1', 3));
      // Another aggregate's snapshot, and a later snapshot of the same aggregate, at p-1@3.
      for (const forged of [K.snapshotKey('patient', 'p-2', 3), K.snapshotKey('patient', 'p-1', 6)]) {
        await put(K.snapshotKey('patient', 'p-1', 3), await stored(forged));
        await expectCode(store.aggregate('patient', 'p-1', { version: 4 }), 'EDBX_ERR_INTEGRITY');
        await expectCode(store.snapshots('patient', 'p-1'), 'EDBX_ERR_INTEGRITY');
        expect((await failed('p-1')).first_bad_version).toBe(3);
      }
      // Names and root right, state forged (possible without encryption): reads cannot tell, verify does.
      const snap = JSON.parse((await stored(K.snapshotKey('patient', 'p-1', 3))).subarray(1).toString());
      const forgedState = { ...JSON.parse(own3.subarray(1).toString()), state: { n: 'forged' } };
      expect(snap.version).toBe(6);
      await put(
        K.snapshotKey('patient', 'p-1', 3),
        Buffer.concat([own3.subarray(0, 1), Buffer.from(JSON.stringify(forgedState))]),
      );
      const r = await failed('p-1');
      expect(r).toMatchObject({
        first_bad_version: 3,
        reason: 'snapshot at version 3 differs from the replay of the events',
      });
      // A snapshot past the last event.
      await put(K.snapshotKey('patient', 'p-1', 3), own3);
      expect((await store.aggregate('patient', 'p-1', { version: 4 })).state).toEqual(at4.state);
      await put(K.snapshotKey('patient', 'p-1', 9), own3);
      expect((await failed('p-1')).reason).toContain('past the last event');
    });

    it('an append never overwrites a stored event, even after the meta was rolled back or removed', async () => {
      await store.append(ev('p-1', 'tick', { n: 1 }), jane);
      await store.append(ev('p-1', 'tick', { n: 2 }), jane);
      const before = await stored(K.metaKey('patient', 'p-1'));
      await store.append(ev('p-1', 'tick', { n: 3 }), jane);
      const third = await stored(K.eventKey('patient', 'p-1', 3));
      const first = await stored(K.eventKey('patient', 'p-1', 1));
      const size = store.size;
      await put(K.metaKey('patient', 'p-1'), before);
      store.clearCache();
      await expectCode(store.append(ev('p-1', 'tick', { n: 'again' }), jane), 'EDBX_ERR_INTEGRITY');
      await del(K.metaKey('patient', 'p-1'));
      store.clearCache();
      await expectCode(store.append(ev('p-1', 'tick', { n: 'anew' }), jane), 'EDBX_ERR_INTEGRITY');
      expect(store.size).toBe(size);
      expect(await stored(K.eventKey('patient', 'p-1', 3))).toEqual(third);
      expect(await stored(K.eventKey('patient', 'p-1', 1))).toEqual(first);
      // Other aggregates, batched with the refused ones, are written.
      const [a, b] = await Promise.allSettled([
        store.append(ev('p-1', 'tick', {}), jane),
        store.append(ev('p-9', 'tick', {}), jane),
      ]);
      expect(a.status).toBe('rejected');
      expect(b).toMatchObject({ status: 'fulfilled', value: { version: 1 } });
    });

    it('reads refuse a meta rolled back behind the store, instead of serving a shorter history', async () => {
      for (let i = 1; i <= 3; i++) await store.append(ev('p-1', 'tick', { n: i }), jane);
      const old = await stored(K.metaKey('patient', 'p-1'));
      for (let i = 4; i <= 6; i++) await store.append(ev('p-1', 'tick', { n: i }), jane);
      const newest = await stored(K.metaKey('patient', 'p-1'));
      await put(K.metaKey('patient', 'p-1'), old);
      store.clearCache();
      const e = await expectCode(store.aggregate('patient', 'p-1'), 'EDBX_ERR_INTEGRITY');
      expect(e.message).toMatch(/event 4 is stored but the aggregate records version 3/);
      await expectCode(store.events('patient', 'p-1'), 'EDBX_ERR_INTEGRITY');
      await expectCode(store.events('patient', 'p-1', { reverse: true, take: 2 }), 'EDBX_ERR_INTEGRITY');
      await expectCode(store.event('patient', 'p-1', 5), 'EDBX_ERR_INTEGRITY');
      await expectCode(store.meta('patient', 'p-1'), 'EDBX_ERR_INTEGRITY');
      // Nor is it listed with its old version (the listing reads metas itself).
      store.clearCache();
      await expectCode(store.list(), 'EDBX_ERR_INTEGRITY');
      // Verification reports it with the first version the meta does not account for.
      expect(await failed('p-1')).toMatchObject({ first_bad_version: 4, version: 3 });
      // Put back, it reads again.
      await put(K.metaKey('patient', 'p-1'), newest);
      store.clearCache();
      expect((await store.aggregate('patient', 'p-1')).version).toBe(6);
    });

    it('reads refuse an archived aggregate whose meta was rolled back behind the store', async () => {
      for (let i = 1; i <= 2; i++) await store.append(ev('p-1', 'tick', { n: i }), jane);
      await archiveAggregate(store, 'patient', 'p-1', jane);
      const old = await stored(K.metaKey('patient', 'p-1'));
      await restoreAggregate(store, 'patient', 'p-1', jane);
      await store.append(ev('p-1', 'tick', { n: 3 }), jane);
      await archiveAggregate(store, 'patient', 'p-1', jane);
      expect((await store.aggregate('patient', 'p-1')).version).toBe(3);
      await put(K.metaKey('patient', 'p-1'), old);
      store.clearCache();
      const e = await expectCode(store.aggregate('patient', 'p-1'), 'EDBX_ERR_INTEGRITY');
      expect(e.message).toMatch(/event 3 is stored but the aggregate records version 2/);
      await expectCode(store.events('patient', 'p-1'), 'EDBX_ERR_INTEGRITY');
      await expectCode(store.event('patient', 'p-1', 3), 'EDBX_ERR_INTEGRITY');
      store.clearCache();
      await expectCode(store.list(), 'EDBX_ERR_INTEGRITY');
    });

    it('a read racing the commit of the next event is never taken for a rolled-back meta', async () => {
      await store.append(ev('p-1', 'tick', { n: 0 }), jane);
      let reading = true;
      const refused: unknown[] = [];
      const reader = (async () => {
        while (reading) {
          store.clearCache();
          await store.aggregate('patient', 'p-1').catch((e: unknown) => refused.push(e));
          // Let the writer's callbacks run (the in-memory engine answers in microtasks).
          await new Promise((r) => setImmediate(r));
        }
      })();
      for (let i = 1; i <= 200; i++) await store.append(ev('p-1', 'tick', { n: i }), jane);
      reading = false;
      await reader;
      expect(refused).toEqual([]);
      expect((await store.aggregate('patient', 'p-1')).version).toBe(201);
    });

    it('reads refuse a history with a missing event instead of serving it shorter', async () => {
      for (let i = 1; i <= 5; i++) await store.append(ev('p-1', 'tick', { n: i }), jane);
      await del(K.eventKey('patient', 'p-1', 3));
      await expectCode(store.events('patient', 'p-1'), 'EDBX_ERR_INTEGRITY');
      await expectCode(store.events('patient', 'p-1', { skip: 1, take: 3 }), 'EDBX_ERR_INTEGRITY');
      await expectCode(store.events('patient', 'p-1', { reverse: true, take: 3 }), 'EDBX_ERR_INTEGRITY');
      await expectCode(store.aggregate('patient', 'p-1', { version: 4 }), 'EDBX_ERR_INTEGRITY');
      await expectCode(store.aggregate('patient', 'p-1', { includeEvents: true }), 'EDBX_ERR_INTEGRITY');
      // What lies before (or, newest first, after) the gap still reads.
      expect((await store.events('patient', 'p-1', { take: 2 })).map((e) => e.version)).toEqual([1, 2]);
      const recent = await store.events('patient', 'p-1', { reverse: true, take: 2 });
      expect(recent.map((e) => e.version)).toEqual([5, 4]);
      // The newest event missing: a full read does not end early either.
      await del(K.eventKey('patient', 'p-1', 5));
      await expectCode(store.events('patient', 'p-1', { fromVersion: 4 }), 'EDBX_ERR_INTEGRITY');
    });

    it("verify checks that each event id's index points at its event", async () => {
      const e = await store.append(ev('p-1', 'tick', { n: 1 }, { event_id: 'evt-1' }), jane);
      await store.append(ev('p-2', 'tick', { n: 1 }), jane);
      expect((await verifyAll(store)).ok).toBe(true);
      const other = await stored(
        K.idempotencyKey((await store.event('patient', 'p-2', 1)).metadata.event_id),
      );
      await put(K.idempotencyKey(e.metadata.event_id), other);
      expect((await failed('p-1')).reason).toBe('the index of event id "evt-1" points elsewhere');
      await del(K.idempotencyKey(e.metadata.event_id));
      expect((await failed('p-1')).reason).toBe('the index of event id "evt-1" is missing');
    });

    it('a long listing lets other work run while it scans (a server stays responsive)', async () => {
      for (let b = 0; b < 3; b++)
        await store.appendMany(
          Array.from({ length: 1000 }, (_, i) => ev(`p-${b}-${i}`, 'tick', {})),
          jane,
        );
      const order: string[] = [];
      setImmediate(() => order.push('other work'));
      await store.list().then((all) => order.push(`listed ${all.length}`));
      expect(order).toEqual(['other work', 'listed 3000']);
    });

    it('comments of administrative actions are bounded text: refused whole, nothing written', async () => {
      await store.append(ev('p-1', 'added', {}), jane);
      const size = store.size;
      await expectCode(
        archiveAggregate(store, 'patient', 'p-1', jane, 'x'.repeat(1001)),
        'EDBX_ERR_INVALID_ARGUMENT',
      );
      await expectCode(takeSnapshot(store, 'patient', 'p-1', jane, 'a\u0000b'), 'EDBX_ERR_INVALID_ARGUMENT');
      expect(store.size).toBe(size);
      expect(await store.snapshots('patient', 'p-1')).toEqual([]);
      expect((await store.aggregate('patient', 'p-1')).archived).toBe(false);
      await archiveAggregate(store, 'patient', 'p-1', jane, 'é'.repeat(1000));
    });

    it('archive moves an aggregate to the archive keyspace; appends refused; reads and verify work; restore', async () => {
      for (let i = 0; i < 5; i++) await store.append(ev('p-1', 'tick', { i }), jane);
      await store.append(ev('p-2', 'tick', {}), jane);
      const audit = await archiveAggregate(store, 'patient', 'p-1', jane, 'discharged 2026');
      expect(audit).toMatchObject({
        aggregate_type: AUDIT_TYPE,
        event_type: 'aggregate-archived',
        payload: { aggregate: 'patient/p-1', comment: 'discharged 2026' },
        metadata: { issued_by: jane.issuedBy },
      });
      expect(await engine.get('main', K.eventKey('patient', 'p-1', 1))).toBeUndefined();
      expect(await engine.get('archive', K.eventKey('patient', 'p-1', 1))).toBeDefined();
      await expectCode(store.append(ev('p-1', 'tick', {}), jane), 'EDBX_ERR_AGGREGATE_ARCHIVED');
      await expectCode(
        archiveAggregate(store, 'patient', 'p-1', jane),
        'EDBX_ERR_AGGREGATE_ALREADY_ARCHIVED',
      );
      const view = await store.aggregate('patient', 'p-1');
      expect(view).toMatchObject({ archived: true, version: 5, state: { i: '4' } });
      expect((await store.events('patient', 'p-1')).length).toBe(5);
      const positions = await store.readLog(1, 100);
      expect(positions.map((e) => e.position)).toEqual(Array.from({ length: store.size }, (_, i) => i + 1));
      expect(positions.filter((e) => e.aggregate_id === 'p-1').length).toBe(5);
      expect((await verifyAggregate(store, 'patient', 'p-1')).ok).toBe(true);
      expect((await eventInclusionProof(store, 'patient', 'p-1', 2)).root).toBe(view.merkle_root);
      expect((await store.list()).map((a) => [a.aggregate_id, a.archived])).toEqual([
        ['p-1', true],
        ['p-2', false],
      ]);
      expect((await verifyAll(store)).ok).toBe(true);
      await restoreAggregate(store, 'patient', 'p-1', jane, 'readmitted');
      await expectCode(restoreAggregate(store, 'patient', 'p-1', jane), 'EDBX_ERR_AGGREGATE_NOT_ARCHIVED');
      expect((await store.append(ev('p-1', 'tick', {}), jane)).version).toBe(6);
      expect((await store.aggregate('patient', 'p-1')).state).toEqual({ i: '4' });
      const log = await store.auditLog();
      expect(log.map((e) => [e.event_type, e.payload.comment])).toEqual([
        ['aggregate-archived', 'discharged 2026'],
        ['aggregate-restored', 'readmitted'],
      ]);
      expect((await verifyAggregate(store, AUDIT_TYPE, AUDIT_ID)).ok).toBe(true);
      expect((await verifyAll(store)).ok).toBe(true);
    });

    it('staged events are invisible until commit, which appends them all atomically', async () => {
      await stageEvent(store, ev('p-1', 'added', { a: '1' }), jane);
      await stageEvent(store, { ...ev('x-1', 'added', {}), aggregate_type: 'order' }, jane);
      await stageEvent(store, ev('p-1', 'updated', { a: '2' }), jane);
      expect(store.size).toBe(0);
      await expectCode(store.aggregate('patient', 'p-1'), 'EDBX_ERR_AGGREGATE_NOT_FOUND');
      await expectCode(
        stageEvent(store, ev('p-1', 'added', { o: {} }), jane),
        'EDBX_ERR_INVALID_FIELD_VALUE',
      );
      const committed = await commitStaged(store);
      expect(committed.map((e) => `${e.aggregate_type}/${e.aggregate_id}@${e.version}`)).toEqual([
        'patient/p-1@1',
        'order/x-1@1',
        'patient/p-1@2',
      ]);
      expect(await listStaged(store)).toEqual([]);
      expect(await commitStaged(store)).toEqual([]); // nothing staged: a successful no-op
      // An event that cannot follow the store and the stage is refused when staged.
      await stageEvent(store, ev('p-8', 'added', {}), jane);
      await expectCode(
        stageEvent(store, ev('p-1', 'updated', {}, { expected_version: 0 }), jane),
        'EDBX_ERR_VERSION_CONFLICT',
      );
      await stageEvent(store, ev('p-9', 'added', {}, { expected_version: 0 }), jane);
      // The store moves past a staged event: commit names it, commits nothing, keeps the stage.
      await store.append(ev('p-9', 'added', {}), jane);
      const refused = await expectCode(commitStaged(store), 'EDBX_ERR_STAGED_EVENT_REFUSED');
      expect(refused.params).toMatchObject({ seq: 2, cause: 'EDBX_ERR_VERSION_CONFLICT' });
      expect((await listStaged(store)).length).toBe(2);
      await expectCode(store.aggregate('patient', 'p-8'), 'EDBX_ERR_AGGREGATE_NOT_FOUND');
      expect((await discardStaged(store)).map((s) => s.request.aggregate_id)).toEqual(['p-8', 'p-9']);
      expect(await listStaged(store)).toEqual([]);
      expect((await store.aggregate('patient', 'p-9')).version).toBe(1);

      // Event ids: an event already appended has nothing to stage (its retry is answered, see the
      // qa-retry tests below); a stage mixing an event appended since with new ones is refused whole,
      // like such a transaction.
      await stageEvent(store, ev('p-31', 'added', { a: '1' }, { event_id: 'ev-31' }), jane);
      await stageEvent(store, ev('p-32', 'added', {}), jane);
      await store.append(ev('p-31', 'added', { a: '1' }, { event_id: 'ev-31' }), jane);
      const mixed = await expectCode(commitStaged(store), 'EDBX_ERR_STAGED_EVENT_REFUSED');
      expect(mixed.params).toMatchObject({ cause: 'EDBX_ERR_EVENT_ID_CONFLICT' });
      await expectCode(store.aggregate('patient', 'p-32'), 'EDBX_ERR_AGGREGATE_NOT_FOUND');
    });

    it('staging an event already appended answers the original record and stages nothing; a different one is refused saying what differs (qa-retry #3)', async () => {
      const first = await store.append(ev('p-30', 'added', { a: '1' }, { event_id: 'ev-30' }), jane);
      // Before: EDBX_ERR_EVENT_ID_CONFLICT "…there is nothing to stage; use a new event id".
      expect(await stageEvent(store, ev('p-30', 'added', { a: '1' }, { event_id: 'ev-30' }), jane)).toEqual({
        event: first,
        duplicate: true,
        staged: null,
      });
      expect(await listStaged(store)).toEqual([]);
      // A stale expected version does not make a retry another event (as for an append).
      const stale = ev('p-30', 'added', { a: '1' }, { event_id: 'ev-30', expected_version: 0 });
      expect(await stageEvent(store, stale, jane)).toMatchObject({ duplicate: true, staged: null });
      const differs: Array<[ReturnType<typeof ev>, typeof jane, RegExp]> = [
        [ev('p-30', 'added', { a: '2' }, { event_id: 'ev-30' }), jane, /in payload field "a";/],
        [
          ev('p-30', 'removed', { a: '1', b: '' }, { event_id: 'ev-30' }),
          jane,
          /event type \(this one: removed\), payload field "b";/,
        ],
        [
          ev('p-31', 'added', { a: '1' }, { event_id: 'ev-30' }),
          jane,
          /aggregate \(this one: patient\/p-31\);/,
        ],
        [
          ev('p-30', 'added', { a: '1' }, { event_id: 'ev-30' }),
          { issuedBy: { group: 'admin', user: 'joe' } },
          /author \(admin\/jane; this one: admin\/joe\);/,
        ],
      ];
      for (const [req, ctx, what] of differs) {
        const e = await expectCode(stageEvent(store, req, ctx), 'EDBX_ERR_EVENT_ID_CONFLICT');
        expect(e.message).toMatch(
          /^event id "ev-30" was already used by added on patient\/p-30, appended at version 1 \(position \d+\), which differs from this event in /,
        );
        expect(e.message).toMatch(what);
        // Following the advice must never post a retried payment twice.
        expect(e.message).toMatch(
          /nothing was staged: if this event retries that one, it is already appended; if it is another event, give it a new event id$/,
        );
      }
      expect(await listStaged(store)).toEqual([]);
      expect((await store.aggregate('patient', 'p-30')).version).toBe(1);
    });

    it('staging an event id already staged answers the staged entry when it is the same event, else EDBX_ERR_DUPLICATE_EVENT_ID naming it (qa-retry #5)', async () => {
      const staged = await stageEvent(store, ev('p-40', 'added', { a: '1' }, { event_id: 'ev-40' }), jane);
      expect(staged).toMatchObject({ staged: { seq: 1 }, duplicate: false });
      const other = await stageEvent(store, ev('p-41', 'added', {}), jane);
      expect(await stageEvent(store, ev('p-40', 'added', { a: '1' }, { event_id: 'ev-40' }), jane)).toEqual({
        staged: staged.staged,
        duplicate: true,
      });
      // Before: EDBX_ERR_EVENT_ID_CONFLICT "…by an event already appended", nothing being appended.
      const refusals: Array<[ReturnType<typeof ev>, RegExp]> = [
        [
          ev('p-40', 'added', { a: '2' }, { event_id: 'ev-40' }),
          /differs from this event in payload field "a";/,
        ],
        [
          ev('p-40', 'added', { a: '1' }, { event_id: 'ev-40', expected_version: 0 }),
          /in expected version \(none; this one: 0\);/,
        ],
      ];
      for (const [req, what] of refusals) {
        const e = await expectCode(stageEvent(store, req, jane), 'EDBX_ERR_DUPLICATE_EVENT_ID');
        expect(e.message).toMatch(/^event id "ev-40" is already staged \(#1, added on patient\/p-40\), /);
        expect(e.message).toMatch(what);
      }
      expect((await listStaged(store)).map((s) => s.seq)).toEqual([1, other.staged!.seq]);
      const committed = await commitStaged(store);
      expect(committed.map((e) => e.aggregate_id)).toEqual(['p-40', 'p-41']);
      // Committed, the same event is a retry of an appended one.
      expect(await stageEvent(store, ev('p-40', 'added', { a: '1' }, { event_id: 'ev-40' }), jane)).toEqual({
        event: committed[0],
        duplicate: true,
        staged: null,
      });
    });

    it('lists aggregates with skip/take and an exclusive cursor, hiding system aggregates', async () => {
      for (const id of ['c', 'a', 'b', 'd']) await store.append(ev(id, 'added', {}), jane);
      await archiveAggregate(store, 'patient', 'd', jane);
      const ids = (xs: { aggregate_id: string }[]) => xs.map((x) => x.aggregate_id);
      expect(ids(await store.list())).toEqual(['a', 'b', 'c', 'd']);
      expect(ids(await store.list({ skip: 1, take: 2 }))).toEqual(['b', 'c']);
      expect(ids(await store.list({ after: 'patient/b' }))).toEqual(['c', 'd']);
      expect((await store.list({ includeSystem: true })).some((a) => a.aggregate_type === AUDIT_TYPE)).toBe(
        true,
      );
    });

    if (name === 'rocksdb') {
      it('everything survives close and reopen', async () => {
        for (let i = 0; i < 5; i++) await store.append(ev(`p-${i % 2}`, 'tick', { i }), jane);
        const head = store.ledgerHead();
        await store.close();
        store = await EventStore.open({ engine: reopen!() });
        expect(store.ledgerHead()).toEqual(head);
        expect((await store.append(ev('p-0', 'tick', {}), jane)).position).toBe(6);
        expect((await verifyAll(store)).ok).toBe(true);
      });

      it('refuses, with a coded error, a data dir holding events in another storage layout', async () => {
        await store.append(ev('p-0', 'tick', {}), jane);
        await engine.write([{ type: 'del', space: 'main', key: K.globalKey('layout') }], { sync: true });
        await store.close();
        const again = reopen!();
        const e = await expectCode(EventStore.open({ engine: again }), 'EDBX_ERR_STORE_LAYOUT');
        // Before (qa-ops #5): "layout 1"; a missing marker is said to be missing.
        expect(e.message).toMatch(
          /^the data dir holds events but no storage layout marker .*this build \(EventDBX [\d.]+\) reads layout 2 only: open it with the build that wrote it, or restore a backup taken with layout 2/,
        );
        expect(again.status).toBe('closed');
        // The refusal changed nothing: still no stamp.
        await again.open();
        expect(await again.get('main', K.globalKey('layout'))).toBeUndefined();
        await again.close();
      });

      it('tells a garbled, a newer and an older layout marker apart, each saying what to do (qa-ops #5)', async () => {
        await store.append(ev('p-0', 'tick', {}), jane);
        expect(store.layout).toBe(2);
        await store.close();
        const told: Record<string, RegExp> = {
          // Before: "storage layout NaN".
          abc: /^the data dir's storage layout marker is "abc", not a layout number \(damaged\).*restore a backup taken with layout 2$/,
          '3': /^the data dir uses storage layout 3, newer than this build's: .*reads layout 2 only; open it with the newer build that wrote it \(a build that reads layout 3\); downgrades are not supported: to go back, restore the backup taken before the upgrade$/,
          '1': /^the data dir uses storage layout 1, older than this build's: .*no migration from layout 1; open it with the build that wrote it/,
        };
        for (const [stamp, message] of Object.entries(told)) {
          const again = reopen!();
          await again.open();
          const value = Buffer.from(stamp);
          await again.write([{ type: 'put', space: 'main', key: K.globalKey('layout'), value }], {
            sync: true,
          });
          await again.close();
          const e = await expectCode(EventStore.open({ engine: again }), 'EDBX_ERR_STORE_LAYOUT');
          expect(e.message, stamp).toMatch(message);
        }
      });
    }

    it('property: state at every version equals the replay of that many events', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.dictionary(fc.constantFrom('a', 'b', 'c', 'd'), fc.string({ maxLength: 4 }), { maxKeys: 3 }),
            { minLength: 1, maxLength: 15 },
          ),
          async (payloads) => {
            const id = `prop-${Math.random().toString(36).slice(2)}`;
            for (const p of payloads) await store.append(ev(id, 'set', p), jane);
            let expected: Record<string, string> = {};
            for (let v = 1; v <= payloads.length; v++) {
              expected = { ...expected, ...payloads[v - 1] };
              expect((await store.aggregate('patient', id, { version: v })).state).toEqual(expected);
            }
          },
        ),
        { numRuns: 15 },
      );
    });

    it('property: idempotent retries never duplicate', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 30 }),
          async (ids) => {
            const before = store.size;
            const tag = Math.random().toString(36).slice(2);
            await Promise.all(
              ids.map((i) =>
                store.append(ev(`idem-${tag}-${i}`, 'once', { i }, { event_id: `${tag}-${i}` }), jane),
              ),
            );
            expect(store.size - before).toBe(new Set(ids).size);
          },
        ),
        { numRuns: 20 },
      );
    });
  });
}
