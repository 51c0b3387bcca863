/**
 * Schemas and restricted mode (issue 5), on the in-memory engine: the schema commands' core operations,
 * each validation rule, the three restrict modes, versioning, the audit log, snapshot thresholds, and
 * that a schema change acknowledged while a client appends lets nothing it forbids through afterwards.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EventDbxError } from '../src/core/errors.js';
import { type Schema, checkAppend, compileSchema, newSchema } from '../src/core/schema.js';
import { MemoryEngine } from '../src/storage/memory/memory-engine.js';
import { RocksDbEngine } from '../src/storage/rocksdb/rocksdb-engine.js';
import { AUDIT_ID, AUDIT_TYPE, EventStore, verifyAggregate } from '../src/store/index.js';
import {
  addSchemaEvents,
  alterSchema,
  createSchema,
  getSchema,
  installSchemas,
  listSchemas,
  removeSchemaEvent,
  schemaHistory,
} from '../src/store/schemas.js';

import { verifyAuditState } from '../src/store/audit-state.js';
import * as K from '../src/store/keys.js';
import { createToken, revokeToken } from '../src/store/tokens.js';
import { expectCode } from './helpers/expect.js';
import { tempDirs } from './helpers/temp.js';

const jane = { issuedBy: { group: 'admin', user: 'jane' } };

const ev = (event_type: string, payload: Record<string, string>, id = 'p-001', type = 'patient') => ({
  aggregate_type: type,
  aggregate_id: id,
  event_type,
  payload,
});

const tempDir = tempDirs('edbx-schemas-');

describe('schemas on the store', () => {
  let store: EventStore;
  beforeEach(async () => {
    store = await EventStore.open({ engine: new MemoryEngine() });
    await installSchemas(store, 'true');
  });
  afterEach(async () => {
    await store.close();
  });

  const patient = () =>
    createSchema(store, { aggregate: 'patient', events: 'patient-added,patient-updated' }, jane);

  describe('schema create', () => {
    it('stores version 1 with the events (no declared fields) and records it in the audit log', async () => {
      const { schema } = await createSchema(
        store,
        { aggregate: 'patient', events: 'patient-updated, patient-added', snapshotThreshold: '100' },
        jane,
      );
      expect(schema).toMatchObject({
        aggregate: 'patient',
        version: 1,
        events: { 'patient-added': { fields: [] }, 'patient-updated': { fields: [] } },
        locked: false,
        locked_fields: [],
        snapshot_threshold: 100,
        updated_by: { group: 'admin', user: 'jane' },
      });
      expect(await getSchema(store, 'patient')).toEqual(schema);
      expect(await listSchemas(store)).toEqual([schema]);
      const audit = await store.auditLog();
      expect(audit.map((e) => e.event_type)).toEqual(['schema-created', 'snapshot-threshold-set']);
      expect(audit[0]!.payload).toMatchObject({ aggregate: 'patient', schema_version: '1' });
      expect((await verifyAggregate(store, AUDIT_TYPE, AUDIT_ID)).ok).toBe(true);
    });

    it('refuses an existing schema, bad names and a threshold that is not a number, writing nothing', async () => {
      await patient();
      const before = store.size;
      const e = await expectCode(
        createSchema(store, { aggregate: 'patient', events: 'x' }, jane),
        'EDBX_ERR_SCHEMA_EXISTS',
      );
      expect(e.status).toBe(409);
      await expectCode(
        createSchema(store, { aggregate: 'Patient', events: 'a' }, jane),
        'EDBX_ERR_INVALID_AGGREGATE_TYPE',
      );
      await expectCode(
        createSchema(store, { aggregate: 'visit', events: 'ok,Not Ok' }, jane),
        'EDBX_ERR_INVALID_EVENT_TYPE',
      );
      await expectCode(
        createSchema(store, { aggregate: 'visit', events: 'a,,b' }, jane),
        'EDBX_ERR_INVALID_EVENT_TYPE',
      );
      for (const bad of ['abc', '-1', '1.5', '']) {
        const t = await expectCode(
          createSchema(store, { aggregate: 'visit', events: 'a', snapshotThreshold: bad }, jane),
          'EDBX_ERR_INVALID_SNAPSHOT_THRESHOLD',
        );
        expect(t.status).toBe(400);
      }
      expect(store.size).toBe(before);
      await expectCode(getSchema(store, 'visit'), 'EDBX_ERR_SCHEMA_NOT_FOUND');
    });
  });

  describe('schema add and remove', () => {
    it('adds events; adding an event twice or to a missing schema is a coded error', async () => {
      await patient();
      const { schema } = await addSchemaEvents(store, 'patient', 'patient-discharged', jane);
      expect(Object.keys(schema.events)).toEqual(['patient-added', 'patient-discharged', 'patient-updated']);
      expect(schema.version).toBe(2);
      const twice = await expectCode(
        addSchemaEvents(store, 'patient', 'visit-booked,patient-added', jane),
        'EDBX_ERR_SCHEMA_EVENT_EXISTS',
      );
      expect(twice.message).toContain('"patient-added"');
      expect((await getSchema(store, 'patient')).version).toBe(2); // nothing of the refused call applied
      await expectCode(addSchemaEvents(store, 'visit', 'a', jane), 'EDBX_ERR_SCHEMA_NOT_FOUND');
    });

    it('removes an event but never the last one', async () => {
      await patient();
      const { schema } = await removeSchemaEvent(store, 'patient', 'patient-updated', jane);
      expect(Object.keys(schema.events)).toEqual(['patient-added']);
      await expectCode(
        removeSchemaEvent(store, 'patient', 'patient-updated', jane),
        'EDBX_ERR_SCHEMA_EVENT_NOT_FOUND',
      );
      const last = await expectCode(
        removeSchemaEvent(store, 'patient', 'patient-added', jane),
        'EDBX_ERR_SCHEMA_LAST_EVENT',
      );
      expect(last.status).toBe(409);
    });
  });

  describe('schema alter', () => {
    it('--event --add/--remove edits the declared fields', async () => {
      await patient();
      let r = await alterSchema(store, 'patient', { event: 'patient-added', add: 'name,status' }, jane);
      expect(r.schema.events['patient-added']).toEqual({ fields: ['name', 'status'] });
      r = await alterSchema(store, 'patient', { event: 'patient-added', add: 'dob', remove: 'status' }, jane);
      expect(r.schema.events['patient-added']).toEqual({ fields: ['dob', 'name'] });
      expect(r.schema.change).toBe('event patient-added: added fields dob, removed fields status');
    });

    it('refuses field edits that make no sense, with coded errors', async () => {
      await patient();
      await alterSchema(store, 'patient', { event: 'patient-added', add: 'name' }, jane);
      const nf = await expectCode(
        alterSchema(store, 'patient', { event: 'patient-added', remove: 'status' }, jane),
        'EDBX_ERR_SCHEMA_FIELD_NOT_FOUND',
      );
      expect(nf.message).toContain('declared: name');
      await expectCode(
        alterSchema(store, 'patient', { event: 'patient-added', remove: 'name' }, jane),
        'EDBX_ERR_SCHEMA_LAST_FIELD',
      );
      await expectCode(
        alterSchema(store, 'patient', { event: 'nope', add: 'x' }, jane),
        'EDBX_ERR_SCHEMA_EVENT_NOT_FOUND',
      );
      await expectCode(
        alterSchema(store, 'patient', { event: 'patient-added', add: 'bad\u0001name' }, jane),
        'EDBX_ERR_INVALID_FIELD_NAME',
      );
      await expectCode(alterSchema(store, 'visit', { lock: true }, jane), 'EDBX_ERR_SCHEMA_NOT_FOUND');
      for (const usage of [
        {},
        { add: 'x' },
        { event: 'patient-added' },
        { field: 'x' },
        { event: 'patient-added', lock: true },
        { event: 'patient-added', add: 'x', remove: 'x' },
      ]) {
        await expectCode(alterSchema(store, 'patient', usage, jane), 'EDBX_ERR_USAGE');
      }
      // An event with a lock is told about the lock rule, not asked for fields.
      const lockEvent = await expectCode(
        alterSchema(store, 'patient', { event: 'patient-added', lock: true }, jane),
        'EDBX_ERR_USAGE',
      );
      expect(lockEvent.message).toContain('a lock without a field locks the whole aggregate type');
      await expectCode(alterSchema(store, 'patient', { lock: 'yes' }, jane), 'EDBX_ERR_INVALID_ARGUMENT');
      await expectCode(
        alterSchema(store, 'patient', { snapshotThreshold: 'ten' }, jane),
        'EDBX_ERR_INVALID_SNAPSHOT_THRESHOLD',
      );
      expect((await getSchema(store, 'patient')).version).toBe(2);
    });

    it('--snapshot-threshold drives the automatic snapshots of the aggregate type', async () => {
      await patient();
      await alterSchema(store, 'patient', { snapshotThreshold: '2' }, jane);
      expect(store.snapshotThreshold('patient')).toBe(2);
      for (let i = 0; i < 4; i++) await store.append(ev('patient-updated', { n: String(i) }), jane);
      expect((await store.snapshots('patient', 'p-001')).map((s) => s.version)).toEqual([2, 4]);
      await alterSchema(store, 'patient', { snapshotThreshold: 0 }, jane);
      expect(store.snapshotThreshold('patient')).toBe(0);
      await store.append(ev('patient-updated', {}), jane);
      await store.append(ev('patient-updated', {}), jane);
      expect((await store.snapshots('patient', 'p-001')).map((s) => s.version)).toEqual([2, 4]);
    });

    it('a change that changes nothing writes no version and no audit entry', async () => {
      await patient();
      await alterSchema(store, 'patient', { field: 'ssn', lock: 'true' }, jane);
      const audit = (await store.auditLog()).length;
      const r = await alterSchema(store, 'patient', { field: 'ssn', lock: 'true' }, jane);
      expect(r.changed).toBe(false);
      expect(r.schema.version).toBe(2);
      expect((await store.auditLog()).length).toBe(audit);
    });

    it('adding a field the event already declares is unchanged; with a new one, only the new one is added', async () => {
      await patient();
      await alterSchema(store, 'patient', { event: 'patient-added', add: 'name' }, jane);
      const audit = (await store.auditLog()).length;
      const same = await alterSchema(store, 'patient', { event: 'patient-added', add: 'name' }, jane);
      expect(same).toMatchObject({ changed: false, schema: { version: 2 } });
      expect((await store.auditLog()).length).toBe(audit);
      const more = await alterSchema(store, 'patient', { event: 'patient-added', add: 'name,dob' }, jane);
      expect(more.changed).not.toBe(false);
      expect(more.schema.change).toBe('event patient-added: added fields dob');
      expect(more.schema.events['patient-added']).toEqual({ fields: ['dob', 'name'] });
    });
  });

  describe('versioning', () => {
    it('keeps every version; history lists them oldest first; the audit log names each change', async () => {
      await patient();
      await addSchemaEvents(store, 'patient', 'patient-discharged', jane);
      await alterSchema(store, 'patient', { event: 'patient-added', add: 'name' }, jane);
      await alterSchema(store, 'patient', { lock: true }, jane);
      await removeSchemaEvent(store, 'patient', 'patient-discharged', jane);
      const history = await schemaHistory(store, 'patient');
      expect(history.map((h) => h.version)).toEqual([1, 2, 3, 4, 5]);
      expect(history[0]!.events).toEqual({
        'patient-added': { fields: [] },
        'patient-updated': { fields: [] },
      });
      expect(history[2]!.locked).toBe(false);
      expect(history[3]!.locked).toBe(true);
      expect(history[4]).toEqual(await getSchema(store, 'patient'));
      expect(history.every((h) => h.created_at === history[0]!.created_at)).toBe(true);
      const audit = (await store.auditLog()).filter((e) => e.event_type.startsWith('schema-'));
      expect(audit.map((e) => [e.event_type, e.payload.schema_version])).toEqual([
        ['schema-created', '1'],
        ['schema-events-added', '2'],
        ['schema-altered', '3'],
        ['schema-altered', '4'],
        ['schema-event-removed', '5'],
      ]);
      expect(audit[3]!.payload.change).toBe('locked the aggregate type');
      await expectCode(schemaHistory(store, 'visit'), 'EDBX_ERR_SCHEMA_NOT_FOUND');
    });

    it('schemas live in the store: after close and reopen (RocksDB) they are still enforced', async () => {
      const dir = await tempDir();
      const first = await EventStore.open({ engine: new RocksDbEngine(dir) });
      await installSchemas(first, 'true');
      await createSchema(
        first,
        { aggregate: 'patient', events: 'patient-added', snapshotThreshold: 3 },
        jane,
      );
      await alterSchema(first, 'patient', { lock: true }, jane);
      await first.close();
      const again = await EventStore.open({ engine: new RocksDbEngine(dir) });
      try {
        await installSchemas(again, 'true');
        expect((await getSchema(again, 'patient')).version).toBe(2);
        expect((await schemaHistory(again, 'patient')).map((h) => h.locked)).toEqual([false, true]);
        expect(again.snapshotThreshold('patient')).toBe(3);
        await expectCode(again.append(ev('patient-added', {}), jane), 'EDBX_ERR_AGGREGATE_LOCKED');
      } finally {
        await again.close();
      }
    });

    it("a snapshot threshold left out of step with its schema (crash) takes the schema's on install, writing nothing", async () => {
      await createSchema(store, { aggregate: 'patient', events: 'a', snapshotThreshold: 5 }, jane);
      await store.setSnapshotThreshold('patient', 9, jane);
      const size = store.size;
      await installSchemas(store, 'true');
      expect(store.snapshotThreshold('patient')).toBe(5);
      expect(store.size).toBe(size);
      expect((await verifyAuditState(store, await store.auditLog())).problems).toEqual([
        'snapshot threshold of patient: stored 9, its schema (version 1) says 5',
      ]);
    });
  });

  describe('validation of appends', () => {
    beforeEach(async () => {
      await patient();
      await alterSchema(store, 'patient', { event: 'patient-added', add: 'name,status' }, jane);
    });

    it('refuses an undeclared event with 422 naming the aggregate, the event and the declared ones', async () => {
      const e = await expectCode(
        store.append(ev('patient-deleted', {}), jane),
        'EDBX_ERR_EVENT_NOT_IN_SCHEMA',
      );
      expect(e.status).toBe(422);
      expect(e.message).toContain('"patient"');
      expect(e.message).toContain('"patient-deleted"');
      expect(e.message).toContain('patient-added, patient-updated');
      await expectCode(store.aggregate('patient', 'p-001'), 'EDBX_ERR_AGGREGATE_NOT_FOUND');
      expect(store.size).toBe(0 + (await store.auditLog()).length);
    });

    it('refuses a field the event does not declare, saying which are permitted', async () => {
      const e = await expectCode(
        store.append(ev('patient-added', { name: 'Jane', ssn: '123' }), jane),
        'EDBX_ERR_FIELD_NOT_PERMITTED',
      );
      expect(e.status).toBe(422);
      expect(e.params).toMatchObject({ aggregate: 'patient', event: 'patient-added', field: 'ssn' });
      expect(e.message).toContain('permitted fields are name, status');
      await expectCode(store.aggregate('patient', 'p-001'), 'EDBX_ERR_AGGREGATE_NOT_FOUND');
    });

    it('accepts declared fields, and any field for an event without declared fields', async () => {
      await store.append(ev('patient-added', { name: 'Jane', status: 'active' }), jane);
      await store.append(ev('patient-updated', { anything: 'goes' }), jane);
      expect((await store.aggregate('patient', 'p-001')).version).toBe(2);
    });

    it('a locked aggregate type accepts no event (403); unlocking reopens it', async () => {
      await alterSchema(store, 'patient', { lock: 'true' }, jane);
      const e = await expectCode(
        store.append(ev('patient-added', { name: 'Jane' }), jane),
        'EDBX_ERR_AGGREGATE_LOCKED',
      );
      expect(e.status).toBe(403);
      expect(e.message).toContain('"patient"');
      await alterSchema(store, 'patient', { lock: 'false' }, jane);
      await store.append(ev('patient-added', { name: 'Jane' }), jane);
    });

    it('a locked field may be set by no event (403), declared or not', async () => {
      await alterSchema(store, 'patient', { field: 'status', lock: true }, jane);
      const e = await expectCode(
        store.append(ev('patient-added', { name: 'Jane', status: 'x' }), jane),
        'EDBX_ERR_FIELD_LOCKED',
      );
      expect(e.status).toBe(403);
      expect(e.params).toMatchObject({ aggregate: 'patient', event: 'patient-added', field: 'status' });
      await expectCode(store.append(ev('patient-updated', { status: 'x' }), jane), 'EDBX_ERR_FIELD_LOCKED');
      await store.append(ev('patient-updated', { other: 'x' }), jane);
    });

    it('a refused event in an atomic batch writes nothing of the batch', async () => {
      await store.append(ev('patient-added', { name: 'Jane' }), jane);
      const size = store.size;
      await expectCode(
        store.appendMany(
          [ev('patient-updated', { a: '1' }), ev('patient-added', { bogus: '1' }, 'p-002')],
          jane,
        ),
        'EDBX_ERR_FIELD_NOT_PERMITTED',
      );
      expect(store.size).toBe(size);
      expect((await store.aggregate('patient', 'p-001')).version).toBe(1);
    });

    it('event names that are also names of object properties are not taken as declared', async () => {
      for (const name of ['constructor', '__proto__', 'tostring']) {
        await expectCode(store.append(ev(name, {}), jane), 'EDBX_ERR_EVENT_NOT_IN_SCHEMA');
      }
      await addSchemaEvents(store, 'patient', 'constructor,__proto__', jane);
      await store.append(ev('constructor', { x: '1' }), jane);
      await store.append(ev('__proto__', { x: '1' }), jane);
      expect(Object.keys((await getSchema(store, 'patient')).events)).toContain('__proto__');
    });
  });

  describe('restrict modes', () => {
    it("'true' validates aggregates with a schema and lets others through", async () => {
      await patient();
      await store.append(ev('anything', { x: '1' }, 'v-1', 'visit'), jane);
      await expectCode(store.append(ev('anything', {}), jane), 'EDBX_ERR_EVENT_NOT_IN_SCHEMA');
    });

    it("'strict' refuses aggregates without a schema too (422), but not the audit log", async () => {
      await installSchemas(store, 'strict');
      const e = await expectCode(
        store.append(ev('visit-booked', {}, 'v-1', 'visit'), jane),
        'EDBX_ERR_SCHEMA_REQUIRED',
      );
      expect(e.status).toBe(422);
      expect(e.message).toContain('"visit"');
      await patient(); // audit-logged change works in strict mode
      await store.append(ev('patient-added', {}), jane);
    });

    it("'false' validates nothing", async () => {
      await patient();
      await alterSchema(store, 'patient', { lock: true }, jane);
      await installSchemas(store, 'false');
      await store.append(ev('undeclared', { any: 'thing' }), jane);
      await installSchemas(store, 'true');
      await expectCode(store.append(ev('patient-added', {}), jane), 'EDBX_ERR_AGGREGATE_LOCKED');
    });

    it('refuses an unknown mode', async () => {
      await expectCode(installSchemas(store, 'maybe' as 'true'), 'EDBX_ERR_INVALID_ARGUMENT');
    });
  });

  it('operations on a store nobody installed schemas on install the default mode', async () => {
    const fresh = await EventStore.open({ engine: new MemoryEngine() });
    await createSchema(fresh, { aggregate: 'patient', events: 'a' }, jane);
    await expectCode(fresh.append(ev('b', {}), jane), 'EDBX_ERR_EVENT_NOT_IN_SCHEMA');
    await fresh.close();
  });

  it('a change acknowledged while a client appends lets nothing it forbids through afterwards', async () => {
    await patient();
    let acked = false;
    const results: Array<{ afterAck: boolean; ok: boolean; code?: string; position?: number }> = [];
    const afterAck = () => results.filter((r) => r.afterAck).length;
    const writer = async (w: number) => {
      for (let i = 0; i < 10_000 && afterAck() < 100; i++) {
        const sentAfterAck = acked;
        try {
          const e = await store.append(ev('patient-updated', { secret: 's', n: String(i) }, `p-${w}`), jane);
          results.push({ afterAck: sentAfterAck, ok: true, position: e.position });
        } catch (e) {
          results.push({ afterAck: sentAfterAck, ok: false, code: (e as EventDbxError).code });
        }
      }
    };
    const writers = Array.from({ length: 8 }, (_, w) => writer(w));
    while (results.filter((r) => r.ok).length < 50) await new Promise((r) => setImmediate(r));
    await alterSchema(store, 'patient', { field: 'secret', lock: true }, jane);
    acked = true;
    await Promise.all(writers);

    const change = (await store.auditLog()).find((e) => e.payload.change === 'locked field secret')!;
    expect(afterAck()).toBeGreaterThanOrEqual(100);
    expect(results.filter((r) => r.afterAck && (r.ok || r.code !== 'EDBX_ERR_FIELD_LOCKED'))).toEqual([]);
    const committed = (await store.readLog(1, 1_000_000)).filter((e) => e.aggregate_type === 'patient');
    const before = committed.filter((e) => e.position < change.position);
    expect(before.length).toBeGreaterThanOrEqual(50);
    expect(committed.filter((e) => e.position > change.position && 'secret' in e.payload)).toEqual([]);
  });
});

describe('checkAppend (pure)', () => {
  const schemaWith = (fields: string[], locked: string[]): Schema => ({
    ...newSchema('patient', ['e'], 0),
    events: { e: { fields } },
    locked_fields: locked,
    version: 1,
    created_at: '',
    updated_at: '',
    updated_by: { group: 'admin', user: 'a' },
    change: '',
  });

  it('accepts a payload exactly when no key is locked and every key is declared (or none are)', () => {
    const key = fc.constantFrom('a', 'b', 'c', 'd');
    fc.assert(
      fc.property(fc.uniqueArray(key), fc.uniqueArray(key), fc.uniqueArray(key), (declared, locked, keys) => {
        const compiled = compileSchema(schemaWith(declared, locked));
        const payload = Object.fromEntries(keys.map((k) => [k, 'v']));
        const expected =
          keys.every((k) => !locked.includes(k)) &&
          (declared.length === 0 || keys.every((k) => declared.includes(k)));
        let accepted = true;
        try {
          checkAppend(compiled, 'true', { aggregate_type: 'patient', event_type: 'e', payload });
        } catch {
          accepted = false;
        }
        expect(accepted).toBe(expected);
        expect(() =>
          checkAppend(compiled, 'false', { aggregate_type: 'patient', event_type: 'x', payload }),
        ).not.toThrow();
      }),
    );
  });
});

describe('schemas and tokens against the audit log', () => {
  it('audit state verification finds a schema rolled back, a revocation undone and records slipped in', async () => {
    const dir = await tempDir();
    let store = await EventStore.open({ engine: new RocksDbEngine(dir) });
    await installSchemas(store, 'true');
    await createSchema(store, { aggregate: 'patient', events: 'patient-added' }, jane);
    await alterSchema(store, 'patient', { lock: true }, jane);
    const { token } = await createToken(store, { group: 'doctors', user: 'ann' }, jane);
    const t = [...store.tokens.values()][0]!;
    const beforeRevoke = await store.engine.get('main', K.tokenKey(t.hash));
    await revokeToken(store, token, jane);
    expect(await verifyAuditState(store, await store.auditLog())).toEqual({ ok: true, problems: [] });

    // With write access to the data dir but not the keys: drop the newest schema version, and put
    // back the token record from before its revocation. Events, ledger and audit log all verify.
    await store.engine.write(
      [
        { type: 'del', space: 'main', key: K.schemaKey('patient', 2) },
        { type: 'put', space: 'main', key: K.tokenKey(t.hash), value: beforeRevoke! },
      ],
      { sync: true },
    );
    await store.close();
    store = await EventStore.open({ engine: new RocksDbEngine(dir) });
    await installSchemas(store, 'true');
    const report = await verifyAuditState(store, await store.auditLog());
    expect(report.ok).toBe(false);
    expect(report.problems).toEqual([
      'schema patient: stored version 1, the audit log records version 2',
      `token ${t.id}: active, the audit log records its revocation`,
    ]);
    await store.close();
  });
});
