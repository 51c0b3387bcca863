/**
 * Regressions of the tamper-evidence audit (findings 5, 6, 12, 13, 14, 16): records stored beside the
 * events — archive states, schemas, staged appends, the audit log's meta, snapshot thresholds — edited
 * through the storage engine with write access to the data dir but not the keys (sealed values are
 * only moved, copied or deleted), and each edit detected.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AesGcmCodec } from '../src/core/crypto/codec.js';
import type { Schema } from '../src/core/schema.js';
import { RocksDbEngine } from '../src/storage/rocksdb/rocksdb-engine.js';
import { verifyAuditState } from '../src/store/audit-state.js';
import { sealJson } from '../src/store/codec.js';
import { EventStore } from '../src/store/index.js';
import * as K from '../src/store/keys.js';
import {
  addSchemaEvents,
  alterSchema,
  createSchema,
  getSchema,
  installSchemas,
  schemaDigest,
  schemaHistory,
} from '../src/store/schemas.js';
import { expectCode } from './helpers/expect.js';

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

async function problems(): Promise<string[]> {
  return (await verifyAuditState(store, await store.auditLog())).problems;
}

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'edbx-audit-state-'));
  store = await EventStore.open({ engine: new RocksDbEngine(dir), codec });
  await installSchemas(store, 'true');
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
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
    // The locked field is never bypassed: the schemas do not load.
    const refused = await expectCode(installSchemas(store, 'true'), 'EDBX_ERR_INTEGRITY');
    expect(refused.message).toContain('schema order version 2');
    await expectCode(schemaHistory(store, 'patient'), 'EDBX_ERR_INTEGRITY');

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
