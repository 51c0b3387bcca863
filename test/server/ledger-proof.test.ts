/**
 * `GET /v1/ledger/proof?position=&tree_size=` (tamper-evidence audit, finding 11): an auditor with HTTP
 * access only links an event to a signed checkpoint. Checked independently of the server's code, as
 * the README tells an auditor to: the checkpoint's signature with node:crypto and the pinned key, the
 * leaf recomputed from the event's content (RFC 8785 + SHA-256), and the audit path walked (RFC 9162
 * §2.1.3.2) to the checkpoint's root — never to the proof's own `root`.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventDbxClient, EventDbxConfigError } from '../../src/client/index.js';
import { verifyInclusion } from '../../src/core/merkle/index.js';
import { buildServer } from '../../src/server/app.js';
import { checkpointRoutes } from '../../src/server/routes/checkpoint.js';
import { MemoryEngine } from '../../src/storage/memory/memory-engine.js';
import { type SecureStore, openSecureStore } from '../../src/store/secure.js';
import { createToken } from '../../src/store/tokens.js';
import { checkNote, leafOf, walk } from '../helpers/independent.js';

interface Event {
  hash: string;
  merkle_root: string;
  position: number;
  [k: string]: unknown;
}

let secure: SecureStore;
let app: FastifyInstance;
let admin: string;
let reader: string;
let scoped: string;

const get = async (path: string, token: string | null = reader) => {
  const res = await app.inject({
    method: 'GET',
    url: path,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  return { status: res.statusCode, body: res.json() };
};

beforeAll(async () => {
  secure = await openSecureStore(new MemoryEngine(), { masterKey: 'mk', dek: 'dek' });
  ({ app } = await buildServer({
    store: secure.store,
    version: 'test',
    restrict: 'false',
    extraRoutes: [(a, ctx) => checkpointRoutes(a, ctx, secure)],
  }));
  const issuedBy = { issuedBy: { group: 'local', user: 'test' } };
  admin = (await createToken(secure.store, { group: 'admin', user: 'admin' }, issuedBy)).token;
  reader = (await createToken(secure.store, { group: 'auditors', user: 'ann', readOnly: true }, issuedBy))
    .token;
  scoped = (
    await createToken(
      secure.store,
      { group: 'doctors', user: 'bob', readOnly: true, scopes: ['patient'] },
      issuedBy,
    )
  ).token;
  for (let i = 1; i <= 11; i++) {
    const id = i % 3 === 0 ? 'o-1' : 'p-001';
    const type = i % 3 === 0 ? 'order' : 'patient';
    const res = await app.inject({
      method: 'POST',
      url: `/v1/aggregates/${type}/${id}/events`,
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      payload: { event_type: 'tick', payload: { i: String(i), note: 'é\u2028🙂' } },
    });
    expect(res.statusCode).toBe(201);
  }
});
afterAll(async () => {
  await app?.close();
  await secure?.store.close();
});

describe('GET /v1/ledger/proof (finding 11)', () => {
  it('links every event of an aggregate to a signed checkpoint, checked independently', async () => {
    const cp = (await get('/v1/checkpoint')).body as { note: string; public_key: string };
    const pinned = secure.publicKeyPem; // exported out of band (`checkpoint public-key`)
    const head = checkNote(cp.note, pinned)!;
    expect(head).toBeDefined();
    const events = (await get('/v1/aggregates/patient/p-001/events')).body.events as Event[];
    expect(events.length).toBe(8);
    for (const event of events) {
      const leaf = leafOf(event);
      expect(leaf.toString('hex')).toBe(event.hash);
      // The checkpoint is older than any later write: ask for its size.
      const { status, body: proof } = await get(
        `/v1/ledger/proof?position=${event.position}&tree_size=${head.size}`,
      );
      expect(status).toBe(200);
      expect(Object.keys(proof).sort()).toEqual([
        'audit_path',
        'leaf_hash',
        'leaf_index',
        'root',
        'tree_size',
      ]);
      expect(proof).toMatchObject({
        leaf_index: event.position - 1,
        tree_size: head.size,
        leaf_hash: event.hash,
      });
      expect(walk(leaf, proof.leaf_index, head.size, proof.audit_path)).toEqual(head.root);
    }
  });

  it('proves against an older checkpoint, and defaults tree_size to the current ledger size', async () => {
    const before = checkNote((await get('/v1/checkpoint')).body.note, secure.publicKeyPem)!;
    await app.inject({
      method: 'POST',
      url: '/v1/aggregates/patient/p-002/events',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      payload: { event_type: 'tick', payload: {} },
    });
    const after = checkNote((await get('/v1/checkpoint')).body.note, secure.publicKeyPem)!;
    expect(after.size).toBe(before.size + 1);
    const e = (await get('/v1/aggregates/patient/p-001/events/2')).body as Event;
    const old = (await get(`/v1/ledger/proof?position=${e.position}&tree_size=${before.size}`)).body;
    expect(
      walk(Buffer.from(e.hash, 'hex'), old.leaf_index, before.size, old.audit_path)?.toString('hex'),
    ).toBe(before.root.toString('hex'));
    const now = (await get(`/v1/ledger/proof?position=${e.position}`)).body;
    expect(now.tree_size).toBe(after.size);
    expect(
      walk(Buffer.from(e.hash, 'hex'), now.leaf_index, after.size, now.audit_path)?.toString('hex'),
    ).toBe(after.root.toString('hex'));
    // A proof against the wrong checkpoint does not verify.
    expect(
      walk(Buffer.from(e.hash, 'hex'), old.leaf_index, before.size, old.audit_path)?.toString('hex'),
    ).not.toBe(after.root.toString('hex'));
  });

  it('refuses a missing or out-of-range position or tree size with EDBX_ERR_INVALID_PROOF_RANGE', async () => {
    const size = secure.store.size;
    for (const query of [
      '',
      '?position=0',
      `?position=${size + 1}`,
      '?position=1.5',
      '?position=x',
      '?position=3&tree_size=2',
      `?position=1&tree_size=${size + 1}`,
      '?position=1&tree_size=0',
    ]) {
      const r = await get(`/v1/ledger/proof${query}`);
      expect(r.status, query).toBe(400);
      expect(r.body.code, query).toBe('EDBX_ERR_INVALID_PROOF_RANGE');
    }
    expect((await get('/v1/ledger/proof?position=1&extra=1')).status).toBe(400);
  });

  it("needs a valid token; one limited to some aggregates is refused others' positions (here an audit entry)", async () => {
    expect((await get('/v1/ledger/proof?position=1', admin)).status).toBe(200);
    expect((await get('/v1/ledger/proof?position=1', reader)).status).toBe(200);
    const limited = await get('/v1/ledger/proof?position=1', scoped);
    expect(limited.status).toBe(403);
    expect(limited.body.code).toBe('EDBX_ERR_TOKEN_OUT_OF_SCOPE');
    for (const path of ['/v1/checkpoint', '/v1/ledger/proof?position=1']) {
      const r = await get(path, null);
      expect(r.status, path).toBe(401);
    }
  });

  it('is documented in the OpenAPI document', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const op = doc.paths['/v1/ledger/proof'].get;
    expect(op.parameters.map((p: { name: string; in: string }) => `${p.in}:${p.name}`).sort()).toEqual([
      'query:position',
      'query:tree_size',
    ]);
    expect(Object.keys(op.responses['200'].content['application/json'].schema.properties).sort()).toEqual([
      'audit_path',
      'leaf_hash',
      'leaf_index',
      'root',
      'tree_size',
    ]);
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['400', '401', '500']));
  });

  it('is in the client SDK: getLedgerProof(position, { treeSize })', async () => {
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    const db = new EventDbxClient({ url, token: reader });
    const cp = await db.getCheckpoint();
    const head = checkNote(cp.note, secure.publicKeyPem)!;
    const e = await db.getEvent('patient', 'p-001', 3);
    const proof = await db.getLedgerProof(e.position, { treeSize: head.size });
    const hex = (h: string) => Buffer.from(h, 'hex');
    expect(
      verifyInclusion(hex(e.hash), proof.leaf_index, head.size, proof.audit_path.map(hex), head.root),
    ).toBe(true);
    expect((await db.getLedgerProof(e.position)).tree_size).toBe(secure.store.size);
    await expect(db.getLedgerProof(0)).rejects.toThrow(EventDbxConfigError);
  });
});
