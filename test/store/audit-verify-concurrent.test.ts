/**
 * Regression of the concurrency QA's finding 2: `audit verify` compares the records the audit log
 * vouches for (tokens, schemas, archive states, plugin configurations) with the log as of one point in
 * time. Run while admin actions commit, it read the log, then the records, and reported the actions
 * that landed in between as tampering ("revoked, the audit log records no revocation", "stored version
 * N, the audit log records version M").
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AesGcmCodec } from '../../src/core/crypto/codec.js';
import { configurePlugin } from '../../src/plugins/index.js';
import { RocksDbEngine } from '../../src/storage/rocksdb/rocksdb-engine.js';
import { archiveAggregate, restoreAggregate } from '../../src/store/admin.js';
import { type AuditVerification, verifyAuditLog } from '../../src/store/audit-state.js';
import { EventStore } from '../../src/store/index.js';
import { alterSchema, createSchema, installSchemas } from '../../src/store/schemas.js';
import { createToken, revokeToken } from '../../src/store/tokens.js';
import { tempDirs } from '../helpers/temp.js';

const jane = { issuedBy: { group: 'admin', user: 'jane' } };
const codec = new AesGcmCodec({ activeKeyId: 1, keys: new Map([[1, randomBytes(32)]]) });

let dir: string;
let store: EventStore;

const tempDir = tempDirs('edbx-audit-concurrent-');
beforeEach(async () => {
  dir = await tempDir();
  store = await EventStore.open({ engine: new RocksDbEngine(dir), codec });
  await installSchemas(store, 'true');
});
afterEach(async () => {
  await store.close();
});

/** What a verdict says, in one line: `ok`, or the log's reason, or the state's problems. */
const verdictOf = (v: AuditVerification): string =>
  v.ok ? 'ok' : v.report.ok ? `state: ${v.state!.problems.join('; ')}` : `log: ${v.report.reason}`;

describe('audit verify while admin actions commit (concurrency QA finding 2)', () => {
  it('reports ok each time: tokens generated and revoked, schemas, archives and plugins changed', async () => {
    await createSchema(store, { aggregate: 'patient', events: 'patient-added' }, jane);
    const append = (id: string) =>
      store.append(
        { aggregate_type: 'patient', aggregate_id: id, event_type: 'patient-added', payload: { n: id } },
        jane,
      );
    await append('p-archived');
    let stop = false;
    const loop = async (step: (i: number) => Promise<unknown>) => {
      for (let i = 0; !stop; i++) await step(i);
    };
    const tokens = async () => {
      const { token } = await createToken(store, { group: 'tellers', user: 'teller', expiration: 60 }, jane);
      await revokeToken(store, token, jane);
    };
    const admin = [
      loop(tokens),
      loop(tokens),
      loop((i) => alterSchema(store, 'patient', { field: 'ssn', lock: i % 2 === 0 }, jane)),
      loop((i) => (i % 2 === 0 ? archiveAggregate : restoreAggregate)(store, 'patient', 'p-archived', jane)),
      loop((i) => configurePlugin(store, 'log', { level: i % 2 === 0 ? 'debug' : 'info' }, jane)),
      loop((i) => append(`p-${i % 7}`)),
    ];
    const verdicts: string[] = [];
    try {
      const until = Date.now() + 3_000;
      while (Date.now() < until || verdicts.length < 20)
        verdicts.push(verdictOf(await verifyAuditLog(store)));
    } finally {
      stop = true;
      await Promise.all(admin);
    }
    expect(verdicts.filter((v) => v !== 'ok')).toEqual([]);
    // Once the actions stop, the same check still passes (and the log has grown meanwhile).
    expect(verdictOf(await verifyAuditLog(store))).toBe('ok');
  });
});
