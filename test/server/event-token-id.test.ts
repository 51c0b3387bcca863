/**
 * QA audit finding 2: an admin can issue a token in any person's name, and its events looked exactly
 * like that person's own. Every event now records the id of the token it was written with
 * (`metadata.issued_by.token`, hashed into its leaf), so an auditor tells the two apart and joins each
 * event to the `token-generated` audit entry that names the admin who issued its token. On a real
 * RocksDB store, over a real socket, with every feature's routes as `eventdbx start` registers them.
 */
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventRecord } from '../../src/core/event.js';
import { leafHash } from '../../src/core/merkle/index.js';
import { leafBytes } from '../../src/protocol/index.js';
import { buildServer } from '../../src/server/app.js';
import { FEATURES } from '../../src/server/features.js';
import { RocksDbEngine } from '../../src/storage/rocksdb/rocksdb-engine.js';
import { type SecureStore, openSecureStore } from '../../src/store/secure.js';
import { createToken } from '../../src/store/tokens.js';
import { verifyAll } from '../../src/store/verify.js';
import { tempDirs } from '../helpers/temp.js';

const HOST = { issuedBy: { group: 'local', user: 'ops' } };

let dir: string;
let secure: SecureStore;
let app: FastifyInstance;
let url: string;

async function call(token: string, method: string, route: string, body?: unknown) {
  const res = await fetch(`${url}${route}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as any };
}

const idOf = (token: string) => token.slice(0, 11);
const leafOf = (e: EventRecord) => leafHash(leafBytes(e)).toString('hex');

const tempDir = tempDirs('edbx-token-id-', { until: 'all' });
beforeAll(async () => {
  dir = await tempDir();
  secure = await openSecureStore(new RocksDbEngine(path.join(dir, 'store')), { masterKey: 'mk', dek: 'dek' });
  ({ app } = await buildServer({
    store: secure.store,
    version: 'test',
    restrict: 'false',
    extraRoutes: FEATURES.filter((f) => f.routes).map((f) => (a, ctx) => f.routes!(a, ctx, secure)),
  }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await app?.close();
  await secure?.store.close();
});

describe('every event records the token that wrote it (QA audit #2)', () => {
  it('tells an impersonating token from the real one, and joins each to the admin who issued it', async () => {
    // Two admins, issued on the host; each issues a token for doctors/dr-house over HTTP.
    const root = (await createToken(secure.store, { group: 'admin', user: 'root' }, HOST)).token;
    const jane = (await createToken(secure.store, { group: 'admin', user: 'jane' }, HOST)).token;
    const house = { group: 'doctors', user: 'dr-house' };
    const real = await call(root, 'POST', '/v1/tokens', house);
    const forged = await call(jane, 'POST', '/v1/tokens', { ...house, expiration: 600 });
    expect([real.status, forged.status]).toEqual([201, 201]);
    const realToken = real.body.token as string;
    const forgedToken = forged.body.token as string;

    const events = '/v1/aggregates/patient/p-002/events';
    const byHouse = await call(realToken, 'POST', events, { event_type: 'patient-seen', payload: {} });
    const byJane = await call(forgedToken, 'POST', events, {
      event_type: 'patient-updated',
      payload: { allergy: 'aspirin' },
    });
    const tx = await call(forgedToken, 'POST', '/v1/transactions', {
      events: [
        {
          aggregate_type: 'patient',
          aggregate_id: 'p-003',
          event_type: 'patient-updated',
          payload: { a: '1' },
        },
      ],
    });
    expect([byHouse.status, byJane.status, tx.status]).toEqual([201, 201, 201]);
    expect(byHouse.body.metadata.issued_by).toEqual({ ...house, token: idOf(realToken) });
    expect(byJane.body.metadata.issued_by).toEqual({ ...house, token: idOf(forgedToken) });
    expect(tx.body.events[0].metadata.issued_by).toEqual({ ...house, token: idOf(forgedToken) });
    expect(idOf(realToken)).not.toBe(idOf(forgedToken));

    // Every way the records are served carries the id, and each served record hashes to its leaf.
    const listed = (await call(root, 'GET', events)).body.events as EventRecord[];
    const recent = (await call(root, 'GET', `${events}/recent`)).body.events as EventRecord[];
    const one = (await call(root, 'GET', `${events}/2`)).body as EventRecord;
    expect(listed.map((e) => e.metadata.issued_by.token)).toEqual([idOf(realToken), idOf(forgedToken)]);
    expect(recent.map((e) => e.metadata.issued_by.token)).toEqual([idOf(forgedToken), idOf(realToken)]);
    expect(one).toEqual(byJane.body);
    for (const e of [...listed, tx.body.events[0] as EventRecord]) expect(leafOf(e)).toBe(e.hash);
    // The id is in the hashed leaf: a record that names another token no longer matches its hash.
    const swapped = {
      ...one,
      metadata: { ...one.metadata, issued_by: { ...house, token: idOf(realToken) } },
    };
    expect(leafOf(swapped)).not.toBe(one.hash);
    expect((await call(root, 'GET', '/v1/aggregates/patient/p-002/verify')).body.ok).toBe(true);

    // The auditor's join: event → its token's `token-generated` entry → the admin who issued it.
    const audit = (await call(root, 'GET', '/v1/audit')).body.entries as EventRecord[];
    const generated = (e: EventRecord) =>
      audit.find((a) => a.event_type === 'token-generated' && a.payload.token === e.metadata.issued_by.token);
    const ofJane = generated(one)!;
    expect(ofJane.payload).toMatchObject({
      token: idOf(forgedToken),
      ...house,
      expires_at: expect.any(String),
    });
    expect(ofJane.metadata.issued_by).toEqual({ group: 'admin', user: 'jane', token: idOf(jane) });
    expect(generated(listed[0]!)!.metadata.issued_by).toEqual({
      group: 'admin',
      user: 'root',
      token: idOf(root),
    });
    // Tokens issued on the host are recorded as such: their entries carry no token id.
    const ofJaneToken = audit.find(
      (a) => a.event_type === 'token-generated' && a.payload.token === idOf(jane),
    )!;
    expect(ofJaneToken.metadata.issued_by).toEqual(HOST.issuedBy);
    for (const e of audit) expect(leafOf(e)).toBe(e.hash);
    // Nothing served holds a secret or its hash.
    const text = JSON.stringify([listed, audit]);
    for (const t of [root, jane, realToken, forgedToken]) expect(text).not.toContain(t.slice(11));
  });

  it('keeps serving, replaying and verifying events written before the id was recorded', async () => {
    const store = secure.store;
    const ctx = { issuedBy: { group: 'doctors', user: 'dr-old' } };
    const before = await store.append(
      {
        aggregate_type: 'patient',
        aggregate_id: 'p-old',
        event_type: 'patient-added',
        payload: { name: 'A' },
      },
      ctx,
    );
    // What earlier versions stored: group and user only, hashed without a token.
    expect(before.metadata.issued_by).toEqual(ctx.issuedBy);
    expect(leafBytes(before).toString()).toContain('"issued_by":{"group":"doctors","user":"dr-old"}}');
    const admin = (await createToken(store, { group: 'admin', user: 'ann' }, HOST)).token;
    const after = await call(admin, 'POST', '/v1/aggregates/patient/p-old/events', {
      event_type: 'patient-updated',
      payload: { name: 'B' },
    });
    expect(after.body.metadata.issued_by.token).toBe(idOf(admin));

    const served = (await call(admin, 'GET', '/v1/aggregates/patient/p-old/events')).body
      .events as EventRecord[];
    expect(served[0]).toEqual(before);
    expect(Object.keys(served[0]!.metadata.issued_by)).toEqual(['group', 'user']);
    for (const e of served) expect(leafOf(e)).toBe(e.hash);
    expect((await call(admin, 'GET', '/v1/aggregates/patient/p-old?version=1')).body.state).toEqual({
      name: 'A',
    });
    expect((await call(admin, 'GET', '/v1/aggregates/patient/p-old')).body.state).toEqual({ name: 'B' });
    expect((await call(admin, 'GET', '/v1/aggregates/patient/p-old/verify')).body).toMatchObject({
      ok: true,
    });
    const proof = (await call(admin, 'GET', '/v1/aggregates/patient/p-old/events/1/proof')).body;
    expect(proof.leaf_hash).toBe(before.hash);
    // Every aggregate (the audit log too) and the ledger, old and new events alike.
    const all = await verifyAll(store);
    expect({ failures: all.failures, ledger: all.ledger.ok }).toEqual({ failures: [], ledger: true });
  });
});
