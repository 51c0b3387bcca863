/**
 * Regressions of the tamper-evidence audit (findings 5, 6, 12, 13, 14, 16): records stored beside the
 * events — archive states, schemas, staged appends, the audit log's meta, snapshot thresholds — edited
 * through the storage engine with write access to the data dir but not the keys (sealed values are
 * only moved, copied or deleted), and each edit detected.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AesGcmCodec } from '../src/core/crypto/codec.js';
import type { EventRecord } from '../src/core/event.js';
import type { Schema } from '../src/core/schema.js';
import type { Space } from '../src/storage/engine.js';
import { prefixEnd } from '../src/storage/engine.js';
import { MemoryEngine } from '../src/storage/memory/memory-engine.js';
import { RocksDbEngine } from '../src/storage/rocksdb/rocksdb-engine.js';
import { archiveAggregate, restoreAggregate } from '../src/store/admin.js';
import { stageEvent, commitStaged, discardStaged, listStaged } from '../src/store/stage.js';
import { verifyAuditLog, verifyAuditState } from '../src/store/audit-state.js';
import { sealJson } from '../src/store/codec.js';
import { AUDIT_ID, AUDIT_TYPE, EventStore, verifyAll } from '../src/store/index.js';
import * as K from '../src/store/keys.js';
import { frontierBytes } from '../src/store/ledger-head.js';
import {
  addSchemaEvents,
  alterSchema,
  createSchema,
  getSchema,
  installSchemas,
  listSchemas,
  schemaDigest,
  schemaHistory,
} from '../src/store/schemas.js';
import { hashToken } from '../src/core/tokens.js';
import { createToken, refreshToken, revokeToken } from '../src/store/tokens.js';
import { expectCode } from './helpers/expect.js';
import { tempDirs } from './helpers/temp.js';

const jane = { issuedBy: { group: 'admin', user: 'jane' } };
type Op = Parameters<RocksDbEngine['write']>[0][number];

let dir: string;
let store: EventStore;
const codec = new AesGcmCodec({ activeKeyId: 1, keys: new Map([[1, randomBytes(32)]]) });

async function reopen(): Promise<void> {
  await store.close();
  store = await EventStore.open({ engine: new RocksDbEngine(dir), codec });
  await installSchemas(store, 'true');
}

const tamper = (ops: Op[]) => store.engine.write(ops, { sync: true });

async function entries(space: Space, prefix: Buffer): Promise<Array<[Buffer, Buffer]>> {
  const out: Array<[Buffer, Buffer]> = [];
  for await (const e of store.engine.range(space, { gte: prefix, lt: prefixEnd(prefix) })) out.push(e);
  return out;
}

/** Every E, N and S entry of an aggregate in a keyspace. */
const dataOf = async (space: Space, type: string, id: string) => [
  ...(await entries(space, K.eventPrefix(type, id))),
  ...(await entries(space, K.nodePrefix(type, id))),
  ...(await entries(space, K.snapshotPrefix(type, id))),
];

/** Move entries between keyspaces, as a backup restore or a hand edit of the files would. */
const moveOps = (found: Array<[Buffer, Buffer]>, from: Space, to: Space): Op[] =>
  found.flatMap(([key, value]): Op[] => [
    { type: 'put', space: to, key, value },
    { type: 'del', space: from, key },
  ]);

const apply = (id: string, payload: Record<string, string>, type = 'patient', event = 'patient-added') =>
  store.append({ aggregate_type: type, aggregate_id: id, event_type: event, payload }, jane);

async function problems(): Promise<readonly string[]> {
  const { report, state } = await verifyAuditLog(store);
  expect(report.ok).toBe(true);
  return state!.problems;
}

const tempDir = tempDirs('edbx-audit-state-');
beforeEach(async () => {
  dir = await tempDir();
  store = await EventStore.open({ engine: new RocksDbEngine(dir), codec });
  await installSchemas(store, 'true');
});
afterEach(async () => {
  await store.close();
});

describe('finding 5: archive states against the audit log', () => {
  beforeEach(async () => {
    for (const name of ['Alice', 'Alice B', 'Alice C']) await apply('p-010', { name });
    await apply('p-011', { name: 'Carl' });
  });

  it('an archived aggregate put back live (pre-archive meta, events moved back) is reported', async () => {
    const before = await store.engine.get('main', K.metaKey('patient', 'p-010'));
    await archiveAggregate(store, 'patient', 'p-010', jane, 'legal hold');
    expect(await problems()).toEqual([]);

    await tamper([
      ...moveOps(await dataOf('archive', 'patient', 'p-010'), 'archive', 'main'),
      { type: 'del', space: 'archive', key: K.metaKey('patient', 'p-010') },
      { type: 'put', space: 'main', key: K.metaKey('patient', 'p-010'), value: before! },
    ]);
    await reopen();
    // Everything else still verifies: only the audit log says the aggregate was archived.
    expect((await verifyAll(store)).ok).toBe(true);
    expect(await problems()).toEqual([
      'aggregate patient/p-010: live, the audit log records its archiving (entry 1)',
    ]);
  });

  it('a restored aggregate put back into the archive (restore rolled back) is reported', async () => {
    await archiveAggregate(store, 'patient', 'p-010', jane, 'hold');
    const stub = await store.engine.get('main', K.metaKey('patient', 'p-010'));
    const full = await store.engine.get('archive', K.metaKey('patient', 'p-010'));
    await restoreAggregate(store, 'patient', 'p-010', jane, 'back');
    expect(await problems()).toEqual([]);

    await tamper([
      ...moveOps(await dataOf('main', 'patient', 'p-010'), 'main', 'archive'),
      { type: 'put', space: 'archive', key: K.metaKey('patient', 'p-010'), value: full! },
      { type: 'put', space: 'main', key: K.metaKey('patient', 'p-010'), value: stub! },
    ]);
    await reopen();
    expect((await verifyAll(store)).ok).toBe(true);
    expect(await problems()).toEqual([
      'aggregate patient/p-010: archived, the audit log records its restore (entry 2)',
    ]);
  });

  it('archived state never archived by an audit entry, and events left in live storage, are reported', async () => {
    await archiveAggregate(store, 'patient', 'p-010', jane, 'hold');
    const full = await store.engine.get('archive', K.metaKey('patient', 'p-010'));
    const [event] = await entries('archive', K.eventPrefix('patient', 'p-010'));
    await tamper([
      { type: 'put', space: 'archive', key: K.metaKey('patient', 'p-011'), value: full! },
      { type: 'put', space: 'main', key: event![0], value: event![1] },
    ]);
    await reopen();
    expect(await problems()).toEqual([
      'aggregate patient/p-010: events are in live storage, the audit log records its archiving (entry 1)',
      'aggregate patient/p-011: archived, but the audit log never recorded its archiving',
    ]);
  });
});

describe('finding 6: schema records bound to their key and to the digest in the audit log', () => {
  beforeEach(async () => {
    await createSchema(store, { aggregate: 'order', events: 'placed,shipped' }, jane);
    await addSchemaEvents(store, 'order', 'cancelled', jane);
    await createSchema(store, { aggregate: 'patient', events: 'patient-added,patient-updated' }, jane);
    await alterSchema(store, 'patient', { field: 'ssn', lock: true }, jane);
  });

  it('each schema change is logged with the SHA-256 of the record it wrote', async () => {
    const log = (await store.auditLog()).filter((e) => e.event_type.startsWith('schema-'));
    const history = [...(await schemaHistory(store, 'order')), ...(await schemaHistory(store, 'patient'))];
    expect(log.map((e) => e.payload.schema_digest)).toEqual(history.map(schemaDigest));
    expect(await problems()).toEqual([]);
  });

  it('two swapped schema records are an integrity error on read and reported by audit verify', async () => {
    const order = await store.engine.get('main', K.schemaKey('order', 2));
    const patient = await store.engine.get('main', K.schemaKey('patient', 2));
    await tamper([
      { type: 'put', space: 'main', key: K.schemaKey('order', 2), value: patient! },
      { type: 'put', space: 'main', key: K.schemaKey('patient', 2), value: order! },
    ]);
    await reopen();
    // The locked field is never bypassed: appends to either type, their schemas and changes to them are
    // refused with the integrity error; the rest of the store works and audit verify can report it.
    const refused = await expectCode(
      store.append(
        { aggregate_type: 'patient', aggregate_id: 'p-9', event_type: 'placed', payload: { ssn: '123' } },
        jane,
      ),
      'EDBX_ERR_INTEGRITY',
    );
    expect(refused.message).toContain('schema patient version 2: the record is order version 2');
    await expectCode(
      store.append({ aggregate_type: 'order', aggregate_id: 'o-9', event_type: 'placed', payload: {} }, jane),
      'EDBX_ERR_INTEGRITY',
    );
    await expectCode(getSchema(store, 'patient'), 'EDBX_ERR_INTEGRITY');
    await expectCode(listSchemas(store), 'EDBX_ERR_INTEGRITY');
    await expectCode(schemaHistory(store, 'order'), 'EDBX_ERR_INTEGRITY');
    await expectCode(
      alterSchema(store, 'patient', { field: 'ssn', lock: false }, jane),
      'EDBX_ERR_INTEGRITY',
    );
    await store.append(
      { aggregate_type: 'visit', aggregate_id: 'v-1', event_type: 'seen', payload: {} },
      jane,
    );

    expect(await problems()).toEqual([
      'integrity check failed for schema order version 2: the record is patient version 2: it does not belong at this key',
      'integrity check failed for schema patient version 2: the record is order version 2: it does not belong at this key',
    ]);
  });

  it('a schema record rewritten at its own key and version is reported by its digest', async () => {
    const locked = await getSchema(store, 'patient');
    const unlocked: Schema = { ...locked, locked_fields: [] };
    await tamper([
      { type: 'put', space: 'main', key: K.schemaKey('patient', 2), value: sealJson(codec, unlocked) },
    ]);
    await reopen();
    expect(await problems()).toEqual([
      'schema patient version 2: the stored record differs from the one the audit log records',
    ]);
  });

  it('log entries written before digests existed are compared by version', async () => {
    const log = (await store.auditLog()).map((e) => {
      const { schema_digest: _, ...payload } = e.payload;
      return { ...e, payload };
    });
    expect(await verifyAuditState(store, log)).toEqual({ ok: true, problems: [] });
    await tamper([{ type: 'del', space: 'main', key: K.schemaKey('patient', 2) }]);
    expect((await verifyAuditState(store, log)).problems).toEqual([
      'schema patient: stored version 1, the audit log records version 2',
    ]);
  });
});

describe('finding 12: archive and restore verify what they move', () => {
  beforeEach(async () => {
    for (const name of ['Alice', 'Alice B', 'Alice C']) await apply('p-010', { name });
  });

  /** Flip one byte of the sealed event at version 2. */
  async function corrupt(space: Space): Promise<void> {
    const key = K.eventKey('patient', 'p-010', 2);
    const value = Buffer.from((await store.engine.get(space, key))!);
    value[value.length - 20]! ^= 0x60;
    await tamper([{ type: 'put', space, key, value }]);
  }

  it('archiving a corrupted aggregate is refused and moves nothing', async () => {
    await corrupt('main');
    const before = store.size;
    const e = await expectCode(
      archiveAggregate(store, 'patient', 'p-010', jane, 'hold'),
      'EDBX_ERR_INTEGRITY',
    );
    expect(e.message).toContain('nothing was moved');
    expect(store.size).toBe(before);
    expect(await dataOf('archive', 'patient', 'p-010')).toEqual([]);
    expect(await store.engine.get('archive', K.metaKey('patient', 'p-010'))).toBeUndefined();
    expect((await store.meta('patient', 'p-010'))!.meta.archived).toBe(false);
  });

  it('restoring a corrupted archived aggregate is refused and moves nothing', async () => {
    await archiveAggregate(store, 'patient', 'p-010', jane, 'hold');
    await corrupt('archive');
    const before = store.size;
    await expectCode(restoreAggregate(store, 'patient', 'p-010', jane, 'back'), 'EDBX_ERR_INTEGRITY');
    expect(store.size).toBe(before);
    expect(await dataOf('main', 'patient', 'p-010')).toEqual([]);
    expect(await store.engine.get('archive', K.metaKey('patient', 'p-010'))).toBeDefined();
    expect((await store.meta('patient', 'p-010'))!.meta.archived).toBe(true);
  });
});

describe('finding 13: staged records carry the sequence number of their key', () => {
  const stage = (id: string, total: string) =>
    stageEvent(
      store,
      { aggregate_type: 'order', aggregate_id: id, event_type: 'placed', payload: { total } },
      jane,
    );

  it('staged records reordered or repeated under other keys are refused, and nothing commits', async () => {
    await stage('o-2', '100');
    await stage('o-3', '5');
    const [first, second] = (await entries('main', K.stagedPrefix())).map(([, value]) => value);
    await tamper([
      { type: 'put', space: 'main', key: K.stagedKey(7), value: first! },
      { type: 'put', space: 'main', key: K.stagedKey(1), value: second! },
    ]);
    const before = store.size;
    const e = await expectCode(commitStaged(store), 'EDBX_ERR_INTEGRITY');
    expect(e.message).toContain('staged event 1');
    await expectCode(listStaged(store), 'EDBX_ERR_INTEGRITY');
    expect(e.message).toContain('aggregate commit --discard');
    expect(store.size).toBe(before);
    // The damaged stage is dropped whole by a discard, and staging works again.
    expect((await discardStaged(store)).map((d) => d.seq)).toEqual([2]);
    expect(await entries('main', K.stagedPrefix())).toEqual([]);
    await stage('o-4', '1');
    expect((await listStaged(store)).map((d) => d.request.aggregate_id)).toEqual(['o-4']);
  });

  it('a staged record repeated under a longer key with the same sequence number is refused', async () => {
    await stage('o-2', '100');
    const [[key, value]] = (await entries('main', K.stagedPrefix())) as [[Buffer, Buffer]];
    await tamper([{ type: 'put', space: 'main', key: Buffer.concat([key, Buffer.from('x')]), value }]);
    await expectCode(commitStaged(store), 'EDBX_ERR_INTEGRITY');
  });
});

describe('finding 14: audit verify never passes a missing audit log', () => {
  it('fails "missing" when the log meta is deleted (its events remain)', async () => {
    await apply('p-001', { name: 'Jane' });
    await createSchema(store, { aggregate: 'order', events: 'placed' }, jane);
    await tamper([{ type: 'del', space: 'main', key: K.metaKey(AUDIT_TYPE, AUDIT_ID) }]);
    await reopen();
    const { report, state } = await verifyAuditLog(store);
    expect(report).toMatchObject({ ok: false, reason: 'missing, but its events are stored' });
    expect(state).toBeUndefined();
  });

  it('fails "missing" when the log meta and events are deleted but the ledger points at them', async () => {
    await apply('p-001', { name: 'Jane' });
    await createSchema(store, { aggregate: 'order', events: 'placed' }, jane);
    const gone = [
      ...(await entries('main', K.eventPrefix(AUDIT_TYPE, AUDIT_ID))),
      ...(await entries('main', K.nodePrefix(AUDIT_TYPE, AUDIT_ID))),
    ];
    await tamper([
      { type: 'del', space: 'main', key: K.metaKey(AUDIT_TYPE, AUDIT_ID) },
      ...gone.map(([key]): Op => ({ type: 'del', space: 'main', key })),
    ]);
    await reopen();
    const { report } = await verifyAuditLog(store);
    expect(report).toMatchObject({ ok: false, reason: 'missing, but ledger position 2 holds its event 1' });
  });

  it('fails when its newest entries are cut off and its meta put back (qa-comp #1)', async () => {
    await apply('p-001', { name: 'Jane' });
    await createSchema(store, { aggregate: 'order', events: 'placed' }, jane);
    const meta = (await entries('main', K.metaKey(AUDIT_TYPE, AUDIT_ID)))[0]!;
    const before = (await store.meta(AUDIT_TYPE, AUDIT_ID))!.meta.version;
    await addSchemaEvents(store, 'order', 'shipped', jane);
    const cut = before + 1;
    expect((await store.meta(AUDIT_TYPE, AUDIT_ID))!.meta.version).toBe(cut);
    await tamper([
      { type: 'put', space: 'main', key: meta[0], value: meta[1] },
      { type: 'del', space: 'main', key: K.eventKey(AUDIT_TYPE, AUDIT_ID, cut) },
      { type: 'del', space: 'main', key: K.nodeKey(AUDIT_TYPE, AUDIT_ID, cut) },
    ]);
    await store.close();
    store = await EventStore.open({ engine: new RocksDbEngine(dir), codec });
    const { report, state } = await verifyAuditLog(store);
    expect(report).toMatchObject({ ok: false, version: before, first_bad_version: cut });
    expect(report.reason).toMatch(
      new RegExp(`the ledger head records ${cut} audit entries but the log holds ${before}`),
    );
    expect(state).toBeUndefined();
    // Nothing is built on it: the log is not read as if whole, nor appended to (a new entry would
    // paper over the cut); other aggregates are not concerned.
    await expectCode(store.meta(AUDIT_TYPE, AUDIT_ID), 'EDBX_ERR_INTEGRITY');
    await expectCode(
      createSchema(store, { aggregate: 'ward', events: 'opened' }, jane),
      'EDBX_ERR_INTEGRITY',
    );
    expect((await apply('p-002', { name: 'Joe' })).version).toBe(1);
    store.clearCache();
    expect((await verifyAuditLog(store)).report.ok).toBe(false);
  });

  it('a trailer spliced from an older ledger head is refused, the tree still reads', async () => {
    await apply('p-001', { name: 'Jane' });
    const old = (await store.engine.get('main', K.globalKey('ledger')))!;
    await createSchema(store, { aggregate: 'order', events: 'placed' }, jane);
    const now = (await store.engine.get('main', K.globalKey('ledger')))!;
    const spliced = Buffer.concat([now.subarray(0, frontierBytes(now)), old.subarray(frontierBytes(old))]);
    await tamper([{ type: 'put', space: 'main', key: K.globalKey('ledger'), value: spliced }]);
    const size = store.size;
    await store.close();
    store = await EventStore.open({ engine: new RocksDbEngine(dir), codec });
    expect(store.size).toBe(size);
    expect(store.auditProblem?.message).toMatch(/spliced from another head/);
    expect((await verifyAuditLog(store)).report.ok).toBe(false);
  });

  it('passes a store that never had an audit log (events appended, nothing administered)', async () => {
    await apply('p-001', { name: 'Jane' });
    const { report, state } = await verifyAuditLog(store);
    expect(report).toMatchObject({ ok: true, version: 0 });
    expect(state).toEqual({ ok: true, problems: [] });
  });
});

describe('finding 16: opening the store never writes to repair snapshot thresholds', () => {
  it('a tampered threshold is not repaired on open; the schema applies and audit verify reports it', async () => {
    await createSchema(store, { aggregate: 'patient', events: 'patient-added', snapshotThreshold: 3 }, jane);
    await reopen();
    expect(await problems()).toEqual([]);
    await tamper([
      {
        type: 'put',
        space: 'main',
        key: K.globalKey('snapshot-thresholds'),
        value: Buffer.from('{"patient":1000}'),
      },
    ]);
    await reopen();
    const size = store.size;
    const logged = (await store.auditLog()).length;
    expect(await problems()).toEqual([
      'snapshot threshold of patient: stored 1000, its schema (version 1) says 3',
    ]);
    // Nothing written by opening or verifying; the schema's threshold is the one used.
    expect(store.size).toBe(size);
    expect((await store.auditLog()).length).toBe(logged);
    expect(store.snapshotThreshold('patient')).toBe(3);
    for (let i = 1; i <= 3; i++) await apply('p-001', { n: String(i) });
    expect((await store.snapshots('patient', 'p-001')).map((s) => s.version)).toEqual([3]);

    // The schema's next change writes its threshold again, audited under the user who made it.
    await alterSchema(store, 'patient', { lock: true }, jane);
    expect((await store.auditLog()).at(-1)).toMatchObject({
      event_type: 'snapshot-threshold-set',
      payload: { aggregate_type: 'patient', every: '3' },
      metadata: { issued_by: jane.issuedBy },
    });
    expect(await problems()).toEqual([]);
  });
});

describe('an audit log of any size (QA4 #6)', () => {
  it('reports 200,000 archivings the store does not hold, and a schema logged at version 200,000', async () => {
    const n = 200_000;
    const mem = await EventStore.open({ engine: new MemoryEngine() });
    try {
      const entry = (version: number, event_type: string, payload: Record<string, string>) =>
        ({ version, event_type, payload }) as unknown as EventRecord;
      const log = [
        ...Array.from({ length: n }, (_, i) =>
          entry(i + 1, 'schema-altered', { aggregate: 'order', schema_version: String(i + 1) }),
        ),
        ...Array.from({ length: n }, (_, i) =>
          entry(n + i + 1, 'aggregate-archived', { aggregate: `order/o-${i}` }),
        ),
      ];
      // Before: Math.max(...versions) and push(...problems) took one argument each: a RangeError.
      const { problems } = await verifyAuditState(mem, log);
      expect(problems).toHaveLength(n + 1);
      expect(problems[0]).toBe(`schema order: missing, the audit log records version ${n}`);
      expect(problems[n]).toBe(
        `aggregate order/o-${n - 1}: missing, the audit log records its archiving (entry ${2 * n})`,
      );
    } finally {
      await mem.close();
    }
  });
});

describe('QA-comp #4: token-generated records keep_alive, and audit verify compares it', () => {
  it('logs keep_alive with the grant; a token made sliding behind the log is reported', async () => {
    const sliding = await createToken(
      store,
      { group: 'doctors', user: 'dr-k', expiration: 3, keepAlive: true },
      jane,
    );
    const fixed = await createToken(store, { group: 'doctors', user: 'dr-m', expiration: 3 }, jane);
    const generated = (await store.auditLog()).filter((e) => e.event_type === 'token-generated');
    expect(generated.map((e) => [e.payload.token, e.payload.keep_alive])).toEqual([
      [sliding.id, 'true'],
      [fixed.id, 'false'],
    ]);
    expect(await problems()).toEqual([]);

    const record = [...store.tokens.values()].find((t) => t.id === fixed.id)!;
    await tamper([
      {
        type: 'put',
        space: 'main',
        key: K.tokenKey(record.hash),
        value: sealJson(codec, { ...record, keep_alive: true }),
      },
    ]);
    await reopen();
    expect(await problems()).toEqual([
      `token ${fixed.id}: keep-alive on, the audit log records keep-alive off`,
    ]);
  });

  it('generation entries written before keep_alive was logged are not compared on it', async () => {
    const t = await createToken(
      store,
      { group: 'doctors', user: 'dr-k', expiration: 3, keepAlive: true },
      jane,
    );
    const log = (await store.auditLog()).map((e) => {
      const { keep_alive: _, ...payload } = e.payload;
      return { ...e, payload };
    });
    expect(await verifyAuditState(store, log)).toEqual({ ok: true, problems: [] });
    await revokeToken(store, t.token, jane);
    // The rest of the token check still applies to such entries.
    expect((await verifyAuditState(store, log)).problems).toEqual([
      `token ${t.id}: revoked, the audit log records no revocation`,
    ]);
  });
});

describe('audit verify compares every grant a token-generated entry records', () => {
  it('reports a token widened behind the log: read-only lifted, scope dropped, audit added, person changed', async () => {
    const t = await createToken(
      store,
      { group: 'nurses', user: 'joy', expiration: 600, readOnly: true, scopes: ['patient'] },
      jane,
    );
    expect(await problems()).toEqual([]);
    const record = [...store.tokens.values()].find((x) => x.id === t.id)!;
    await tamper([
      {
        type: 'put',
        space: 'main',
        key: K.tokenKey(record.hash),
        value: sealJson(codec, {
          ...record,
          group: 'admin',
          user: 'mallory',
          read_only: false,
          scopes: [],
          audit: true,
        }),
      },
    ]);
    await reopen();
    expect(await problems()).toEqual([
      `token ${t.id}: group admin, the audit log records group nurses`,
      `token ${t.id}: user mallory, the audit log records user joy`,
      `token ${t.id}: read-write, the audit log records read-only`,
      `token ${t.id}: every aggregate, the audit log records scopes ["patient"]`,
      `token ${t.id}: audit log readable, the audit log records audit log not readable`,
    ]);
  });

  it('compares scopes as the list they are: a scope holding a comma is not two scopes', async () => {
    const t = await createToken(store, { group: 'g', user: 'u4', scopes: ['patient/a,b'] }, jane);
    const entry = (await store.auditLog()).find((e) => e.payload.token === t.id)!;
    expect(entry.payload).toMatchObject({ scopes: 'patient/a,b', scope_list: '["patient/a,b"]' });
    const record = [...store.tokens.values()].find((x) => x.id === t.id)!;
    await tamper([
      {
        type: 'put',
        space: 'main',
        key: K.tokenKey(record.hash),
        value: sealJson(codec, { ...record, scopes: ['patient/a', 'b'] }),
      },
    ]);
    await reopen();
    expect(await problems()).toEqual([
      `token ${t.id}: scopes ["patient/a","b"], the audit log records scopes ["patient/a,b"]`,
    ]);
  });

  it('a refresh (expiry, allowance) is not a change of grant', async () => {
    const t = await createToken(store, { group: 'doctors', user: 'dr-k', expiration: 60, limit: 5 }, jane);
    await refreshToken(store, t.token, { expiration: 3600, limit: 50 }, jane);
    expect(await problems()).toEqual([]);
  });
});

describe('pen-test #4: a token record put back from before a refresh is reported', () => {
  /** The sealed record of a token as stored now (bytes, never decrypted), to put back later. */
  const storedRecord = async (token: string) => {
    const hash = [...store.tokens.values()].find((t) => t.id === token.slice(0, 11))!.hash;
    return { key: K.tokenKey(hash), value: (await store.engine.get('main', K.tokenKey(hash)))! };
  };
  const putBack = (r: { key: Buffer; value: Buffer }) =>
    tamper([{ type: 'put', space: 'main', key: r.key, value: r.value }]);

  it('a shortened expiry and a lowered limit undone by the older record', async () => {
    const t = await createToken(
      store,
      { group: 'doctors', user: 'exp-doc', expiration: 100_000, limit: 1000, scopes: ['patient'] },
      jane,
    );
    const before = await storedRecord(t.token);
    const cut = await refreshToken(store, t.token, { expiration: 5, limit: 5 }, jane);
    const refreshed = (await store.auditLog()).find((e) => e.event_type === 'token-refreshed')!;
    expect(refreshed.payload).toMatchObject({ limit: '5', ttl_seconds: '5' });
    expect(await problems()).toEqual([]);

    await putBack(before);
    await reopen();
    expect(await problems()).toEqual([
      `token ${t.id}: expiry ${t.expires_at}, the audit log records expiry ${cut.expires_at}`,
      `token ${t.id}: a limit of 1000 writes, the audit log records a limit of 5 writes`,
    ]);
  });

  it('a record from before a refresh that set a first limit or expiry is reported too', async () => {
    const t = await createToken(store, { group: 'doctors', user: 'open-ended' }, jane);
    const before = await storedRecord(t.token);
    const cut = await refreshToken(store, t.token, { expiration: 60, limit: 3 }, jane);
    await putBack(before);
    await reopen();
    expect(await problems()).toEqual([
      `token ${t.id}: no expiry, the audit log records expiry ${cut.expires_at}`,
      `token ${t.id}: no write limit, the audit log records a limit of 3 writes`,
    ]);
  });

  it('remaining writes may go down with use, never back above what the latest entry left', async () => {
    const t = await createToken(
      store,
      { group: 'doctors', user: 'writer', expiration: 600, keepAlive: true, limit: 3 },
      jane,
    );
    const fresh = await storedRecord(t.token);
    const writer = { issuedBy: { group: 'doctors', user: 'writer' }, tokenHash: hashToken(t.token) };
    const write = (id: string) =>
      store.append(
        { aggregate_type: 'patient', aggregate_id: id, event_type: 'patient-added', payload: { a: id } },
        writer,
      );
    await write('p-w1');
    await write('p-w2');
    // The same span and limit, logged with the one write left.
    await refreshToken(store, t.token, { expiration: 600 }, jane);
    await write('p-w3');
    // Writes lower the count (and slide the expiry) without an entry: that is not tampering.
    expect(await problems()).toEqual([]);

    await putBack(fresh);
    await reopen();
    expect(await problems()).toEqual([
      `token ${t.id}: 3 writes left, the audit log records 1 (writes only lower it)`,
    ]);
  });

  it('a keep-alive token never refreshed is compared with the span its generation entry implies', async () => {
    const t = await createToken(
      store,
      { group: 'doctors', user: 'sliding', expiration: 600, keepAlive: true },
      jane,
    );
    const record = [...store.tokens.values()].find((x) => x.id === t.id)!;
    await store.append(
      { aggregate_type: 'patient', aggregate_id: 'p-s', event_type: 'patient-added', payload: { a: '1' } },
      { issuedBy: { group: 'doctors', user: 'sliding' }, tokenHash: record.hash },
    );
    expect(await problems()).toEqual([]);
    // Rewritten with the keys (a refresh is the only way to a new span): the span is compared.
    await tamper([
      {
        type: 'put',
        space: 'main',
        key: K.tokenKey(record.hash),
        value: sealJson(codec, { ...record, ttl_seconds: 100_000 }),
      },
    ]);
    await reopen();
    expect(await problems()).toEqual([
      `token ${t.id}: keep-alive span 100000 seconds, the audit log records keep-alive span 600 seconds`,
    ]);
  });

  it('refresh entries written before limit and ttl_seconds were logged: expiry and remaining only', async () => {
    const t = await createToken(store, { group: 'doctors', user: 'old', expiration: 600, limit: 10 }, jane);
    const before = await storedRecord(t.token);
    const cut = await refreshToken(store, t.token, { expiration: 60, limit: 2 }, jane);
    await putBack(before);
    await reopen();
    const log = (await store.auditLog()).map((e) => {
      const { limit: _l, ttl_seconds: _t, ...payload } = e.payload;
      return e.event_type === 'token-refreshed' ? { ...e, payload } : e;
    });
    expect((await verifyAuditState(store, log)).problems).toEqual([
      `token ${t.id}: expiry ${t.expires_at}, the audit log records expiry ${cut.expires_at}`,
      `token ${t.id}: 10 writes left, the audit log records 2 (writes only lower it)`,
    ]);
  });
});
