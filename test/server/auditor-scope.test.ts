/**
 * A least-privilege auditor (auditor QA, finding 3 and the first half of 11): a token scoped to the
 * aggregates it audits proves their events against a signed checkpoint (GET /v1/ledger/proof), and,
 * issued with `--audit`, reads the audit log — the entries about its aggregates and the store as a
 * whole, the others withheld as hashes — without reading every aggregate, token or plugin. A scoped
 * token lists only its types' schemas. Through real HTTP on 127.0.0.1, on RocksDB in a temp dir;
 * proofs and the log's tree are checked independently of the server's code.
 */
import type net from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventDbxApiError, EventDbxClient } from '../../src/client/index.js';
import type { EventRecord } from '../../src/core/event.js';
import { buildServer } from '../../src/server/app.js';
import { FEATURES } from '../../src/server/features.js';
import { RocksDbEngine } from '../../src/storage/rocksdb/rocksdb-engine.js';
import { archiveAggregate, takeSnapshot } from '../../src/store/index.js';
import { type SecureStore, openSecureStore } from '../../src/store/secure.js';
import { createToken } from '../../src/store/tokens.js';
import { checkNote as checkedNote, leafOf, mth, walk } from '../helpers/independent.js';
import { tempDirs } from '../helpers/temp.js';

const hex = (h: string) => Buffer.from(h, 'hex');

/** The signed checkpoint's size and root, checked with the key exported out of band. */
function checkNote(note: string, pem: string): { size: number; root: Buffer } {
  const head = checkedNote(note, pem);
  expect(head).toBeDefined();
  return head!;
}

let dir: string;
let secure: SecureStore;
let app: FastifyInstance;
let url: string;
let admin: string;
/** Tokens issued over HTTP by the admin, by person. */
const tokens: Record<string, { token: string; id: string }> = {};
/** Positions of events by aggregate. */
const positions: Record<string, number[]> = {};

async function call(method: string, p: string, token: string | null, body?: unknown) {
  const res = await fetch(`${url}${p}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}
const get = (p: string, token: string | null) => call('GET', p, token);

const tempDir = tempDirs('edbx-auditor-', { until: 'all' });
beforeAll(async () => {
  dir = await tempDir();
  secure = await openSecureStore(new RocksDbEngine(dir), { masterKey: 'mk', dek: 'dek' });
  ({ app } = await buildServer({
    store: secure.store,
    version: 'test',
    restrict: 'false',
    extraRoutes: FEATURES.filter((f) => f.routes).map((f) => (a, ctx) => f.routes!(a, ctx, secure)),
  }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  url = `http://127.0.0.1:${(app.server.address() as net.AddressInfo).port}`;
  const local = { issuedBy: { group: 'local', user: 'test' } };
  admin = (await createToken(secure.store, { group: 'admin', user: 'jane' }, local)).token;

  const issue = async (name: string, body: Record<string, unknown>) => {
    const r = await call('POST', '/v1/tokens', admin, body);
    expect(r.status, name).toBe(201);
    tokens[name] = { token: r.body.token, id: r.body.id };
  };
  // The auditor of one patient, with and without --audit; an auditor of everything (not an admin).
  await issue('ann', {
    group: 'auditors',
    user: 'ann',
    read_only: true,
    aggregates: ['patient/p-001'],
    audit: true,
  });
  await issue('bob', { group: 'auditors', user: 'bob', read_only: true, aggregates: ['patient/p-001'] });
  await issue('zed', { group: 'auditors', user: 'zed', read_only: true, audit: true });
  // Tokens that can reach p-001 (unscoped, or all patients) and tokens that never can.
  await issue('joy', { group: 'nurses', user: 'joy' });
  await issue('house', { group: 'doctors', user: 'house', aggregates: ['patient'] });
  await issue('carl', { group: 'billing', user: 'carl', aggregates: ['billing'] });
  await issue('wilson', { group: 'doctors', user: 'wilson', aggregates: ['patient/p-002'] });

  for (const aggregate of ['patient', 'billing'])
    expect(
      (await call('POST', '/v1/schemas', admin, { aggregate, events: ['added', 'updated'] })).status,
    ).toBe(201);
  const append = async (type: string, id: string, event_type: string, payload: Record<string, string>) => {
    const r = await call('POST', `/v1/aggregates/${type}/${id}/events`, admin, { event_type, payload });
    expect(r.status).toBe(201);
    (positions[`${type}/${id}`] ??= []).push(r.body.position);
  };
  await append('patient', 'p-001', 'added', { name: 'Jane Doe' });
  await append('patient', 'p-002', 'added', { name: 'John Roe' });
  await append('billing', 'b-1', 'added', { amount: '72.50' });
  await append('patient', 'p-001', 'updated', { allergy: 'aspirin' });
  const by = { issuedBy: { group: 'admin', user: 'jane' } };
  await takeSnapshot(secure.store, 'patient', 'p-001', by, 'before the audit');
  await archiveAggregate(secure.store, 'patient', 'p-002', by, 'John Roe moved away');
  for (const name of ['carl', 'joy'])
    expect((await call('POST', `/v1/tokens/${tokens[name]!.id}/revoke`, admin)).status).toBe(200);
});
afterAll(async () => {
  await app?.close();
  await secure?.store.close();
});

/** Every page of GET /v1/audit for a token, following next_cursor. */
async function auditPages(token: string, take: number) {
  const entries: EventRecord[] = [];
  const withheld: Array<{ version: number; position: number; hash: string }> = [];
  let cursor: string | null = null;
  do {
    const r = await get(`/v1/audit?take=${take}${cursor ? `&cursor=${cursor}` : ''}`, token);
    expect(r.status).toBe(200);
    entries.push(...r.body.entries);
    withheld.push(...r.body.withheld);
    cursor = r.body.next_cursor;
  } while (cursor !== null);
  return { entries, withheld };
}

describe('GET /v1/ledger/proof for a token limited to some aggregates (finding 3)', () => {
  it("proves its own aggregate's events against the signed checkpoint, checked independently", async () => {
    for (const who of ['ann', 'bob']) {
      const token = tokens[who]!.token;
      const cp = (await get('/v1/checkpoint', token)).body as { note: string };
      const head = checkNote(cp.note, secure.publicKeyPem);
      const events = (await get('/v1/aggregates/patient/p-001/events', token)).body.events as EventRecord[];
      expect(events.map((e) => e.position)).toEqual(positions['patient/p-001']);
      for (const e of events) {
        const r = await get(`/v1/ledger/proof?position=${e.position}&tree_size=${head.size}`, token);
        expect(r.status, who).toBe(200);
        expect(walk(leafOf(e), r.body.leaf_index, head.size, r.body.audit_path)).toEqual(head.root);
      }
    }
  });

  it("refuses another aggregate's position with a coded message naming the position, never the aggregate", async () => {
    for (const who of ['ann', 'bob']) {
      const t = tokens[who]!;
      for (const position of [positions['patient/p-002']![0]!, positions['billing/b-1']![0]!]) {
        const r = await get(`/v1/ledger/proof?position=${position}`, t.token);
        expect(r.status, `${who} ${position}`).toBe(403);
        expect(r.body.code).toBe('EDBX_ERR_TOKEN_OUT_OF_SCOPE');
        expect(r.body.detail).toContain(`token ${t.id} may not access ledger position ${position}:`);
        expect(r.body.detail).not.toMatch(/p-002|billing|b-1/);
      }
    }
  });

  it('proves audit log entries only for a token issued with --audit', async () => {
    const entry = (await get('/v1/audit', admin)).body.entries[0] as EventRecord;
    expect((await get(`/v1/ledger/proof?position=${entry.position}`, tokens.ann!.token)).status).toBe(200);
    const bob = await get(`/v1/ledger/proof?position=${entry.position}`, tokens.bob!.token);
    expect(bob.status).toBe(403);
    expect(bob.body.code).toBe('EDBX_ERR_TOKEN_OUT_OF_SCOPE');
  });

  it('still answers a bad position with EDBX_ERR_INVALID_PROOF_RANGE', async () => {
    for (const q of ['', '?position=0', `?position=${secure.store.size + 1}`, '?position=x']) {
      const r = await get(`/v1/ledger/proof${q}`, tokens.ann!.token);
      expect(r.status, q).toBe(400);
    }
  });

  it('is what the SDK getLedgerProof gets, allowed and refused alike', async () => {
    const db = new EventDbxClient({ url, token: tokens.bob!.token });
    const e = await db.getEvent('patient', 'p-001', 2);
    const proof = await db.getLedgerProof(e.position);
    expect(walk(leafOf(e), proof.leaf_index, proof.tree_size, proof.audit_path)).toEqual(hex(proof.root));
    const refused = await db.getLedgerProof(positions['billing/b-1']![0]!).catch((x: unknown) => x);
    expect(refused).toBeInstanceOf(EventDbxApiError);
    expect((refused as EventDbxApiError).code).toBe('EDBX_ERR_TOKEN_OUT_OF_SCOPE');
  });
});

describe('GET /v1/audit with a token issued with --audit (finding 3)', () => {
  it('is refused to a scoped token without --audit, saying how to get one', async () => {
    for (const p of ['/v1/audit', '/v1/audit/verify']) {
      const r = await get(p, tokens.bob!.token);
      expect(r.status, p).toBe(403);
      expect(r.body.code).toBe('EDBX_ERR_GROUP_NOT_ALLOWED');
      expect(r.body.detail).toContain('--audit');
    }
  });

  it('grants the audit log, not every aggregate, token or plugin', async () => {
    const ann = tokens.ann!.token;
    expect((await get('/v1/audit', ann)).status).toBe(200);
    const verify = await get('/v1/audit/verify', ann);
    expect(verify.status).toBe(200);
    expect(verify.body.ok).toBe(true);
    for (const p of ['/v1/tokens', '/v1/plugins']) {
      const r = await get(p, ann);
      expect(r.status, p).toBe(403);
      expect(r.body.code).toBe('EDBX_ERR_GROUP_NOT_ALLOWED');
    }
    expect((await get('/v1/aggregates/billing/b-1', ann)).body.code).toBe('EDBX_ERR_TOKEN_OUT_OF_SCOPE');
    expect((await get('/v1/aggregates/patient/p-001', ann)).status).toBe(200);
    const write = await call('POST', '/v1/aggregates/patient/p-001/events', ann, {
      event_type: 'updated',
      payload: { allergy: 'none' },
    });
    expect(write.body.code).toBe('EDBX_ERR_TOKEN_READ_ONLY');
    // --audit is not admin: an auditor of everything still cannot manage tokens.
    const zed = await call('POST', '/v1/tokens', tokens.zed!.token, { group: 'x', user: 'y' });
    expect(zed.body.code).toBe('EDBX_ERR_GROUP_NOT_ALLOWED');
  });

  it('shows a scoped auditor the entries about its aggregate, the tokens that reach it and the store', async () => {
    const { entries, withheld } = await auditPages(tokens.ann!.token, 100);
    const all = (await get('/v1/audit?take=1000', admin)).body.entries as EventRecord[];
    const label = (e: EventRecord) => `${e.event_type} ${String(e.payload.user ?? e.payload.aggregate)}`;
    expect(entries.map(label)).toEqual([
      // jane's own admin token (unscoped), then ann, bob, zed, joy and house: each can reach p-001.
      'token-generated jane',
      'token-generated ann',
      'token-generated bob',
      'token-generated zed',
      'token-generated joy',
      'token-generated house',
      'schema-created patient',
      'aggregate-snapshot-taken patient/p-001',
      'token-revoked joy',
    ]);
    // Withheld: carl's and wilson's tokens, billing's schema, p-002's archive, carl's revocation.
    const hidden = all.filter((e) => withheld.some((w) => w.version === e.version));
    expect(hidden.map(label)).toEqual([
      'token-generated carl',
      'token-generated wilson',
      'schema-created billing',
      'aggregate-archived patient/p-002',
      'token-revoked carl',
    ]);
    // Nothing withheld shows through: not its content, only version, position and leaf hash.
    expect(JSON.stringify(entries)).not.toMatch(/p-002|billing|carl|wilson|moved away/);
    expect(withheld).toEqual(hidden.map((e) => ({ version: e.version, position: e.position, hash: e.hash })));
    expect(Object.keys(withheld[0]!).sort()).toEqual(['hash', 'position', 'version']);
  });

  it("lets a scoped auditor recompute the log's tree from what it sees and prove every entry in the ledger", async () => {
    const ann = tokens.ann!.token;
    const { entries, withheld } = await auditPages(ann, 2);
    const leaves = new Map<number, Buffer>([
      ...entries.map((e) => [e.version, leafOf(e)] as const),
      ...withheld.map((w) => [w.version, hex(w.hash)] as const),
    ]);
    const versions = [...leaves.keys()].sort((a, b) => a - b);
    expect(versions).toEqual(versions.map((_, i) => i + 1));
    const ordered = versions.map((v) => leaves.get(v)!);
    // Each entry's merkle_root is the log's root at its version: no entry before it was dropped.
    for (const e of entries) expect(mth(ordered.slice(0, e.version))).toEqual(hex(e.merkle_root));
    const cp = checkNote((await get('/v1/checkpoint', ann)).body.note, secure.publicKeyPem);
    const proofs = [
      ...entries.map((e) => ({ position: e.position, leaf: leafOf(e) })),
      ...withheld.map((w) => ({ position: w.position, leaf: hex(w.hash) })),
    ];
    for (const { position, leaf } of proofs) {
      const r = await get(`/v1/ledger/proof?position=${position}&tree_size=${cp.size}`, ann);
      expect(r.status).toBe(200);
      expect(walk(leaf, r.body.leaf_index, cp.size, r.body.audit_path)).toEqual(cp.root);
    }
  });

  it('pages by log entries: skip and take count the withheld ones too', async () => {
    const ann = tokens.ann!.token;
    const page = await get('/v1/audit?skip=6&take=4', ann);
    const seen = [...page.body.entries, ...page.body.withheld].map((e: { version: number }) => e.version);
    expect(seen.sort((a: number, b: number) => a - b)).toEqual([7, 8, 9, 10]);
    expect(typeof page.body.next_cursor).toBe('string');
  });

  it('shows an auditor without scopes every entry, withholding none', async () => {
    const all = (await get('/v1/audit?take=1000', admin)).body;
    expect(all.withheld).toEqual([]);
    const zed = await get('/v1/audit?take=1000', tokens.zed!.token);
    expect(zed.status).toBe(200);
    expect(zed.body).toEqual(all);
  });

  it('is in the SDK: auditLog() with withheld, and createToken({ audit }) with the flag in the listing', async () => {
    const annDb = new EventDbxClient({ url, token: tokens.ann!.token });
    const page = await annDb.auditLog({ take: 1000 });
    expect(page.withheld.length).toBe(5);
    expect((await annDb.verifyAuditLog()).ok).toBe(true);
    const adminDb = new EventDbxClient({ url, token: admin });
    const issued = await adminDb.createToken({
      group: 'auditors',
      user: 'sdk',
      read_only: true,
      aggregates: ['patient/p-001'],
      audit: true,
    });
    expect(issued.audit).toBe(true);
    const listed = (await adminDb.listTokens({ take: 1000 })).tokens;
    expect(listed.find((t) => t.id === issued.id)?.audit).toBe(true);
    expect(listed.find((t) => t.id === tokens.bob!.id)?.audit).toBe(false);
    const generated = (await adminDb.auditLog({ take: 1000 })).entries.filter(
      (e) => e.event_type === 'token-generated',
    );
    expect(generated.find((e) => e.payload.token === issued.id)?.payload).toMatchObject({
      audit: 'true',
      scopes: 'patient/p-001',
      read_only: 'true',
    });
    expect(generated.find((e) => e.payload.token === tokens.bob!.id)?.payload.audit).toBe('false');
    const auditor = new EventDbxClient({ url, token: issued.token });
    expect((await auditor.auditLog()).entries.length).toBeGreaterThan(0);
  });

  it('refuses an audit value that is not a boolean', async () => {
    const r = await call('POST', '/v1/tokens', admin, { group: 'a', user: 'b', audit: 'yes' });
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('EDBX_ERR_INVALID_ARGUMENT');
  });
});

describe('GET /v1/schemas for a token limited to some aggregates (finding 11)', () => {
  const names = async (token: string, q = '') =>
    ((await get(`/v1/schemas${q}`, token)).body.schemas as Array<{ aggregate: string }>).map(
      (s) => s.aggregate,
    );

  it('lists only the schemas of its types', async () => {
    expect(await names(tokens.ann!.token)).toEqual(['patient']);
    expect(await names(tokens.house!.token)).toEqual(['patient']);
    expect(await names(tokens.zed!.token)).toEqual(['billing', 'patient']);
    const r = await call('POST', '/v1/tokens', admin, {
      group: 'clerks',
      user: 'two',
      aggregates: ['order', 'billing/b-1', 'patient'],
    });
    const two = r.body.token as string;
    expect(await names(two)).toEqual(['billing', 'patient']);
    const first = await get('/v1/schemas?take=1', two);
    expect(first.body.schemas.map((s: { aggregate: string }) => s.aggregate)).toEqual(['billing']);
    expect(await names(two, `?take=1&cursor=${first.body.next_cursor}`)).toEqual(['patient']);
    expect(await names(two, '?skip=1')).toEqual(['patient']);
    const db = new EventDbxClient({ url, token: tokens.ann!.token });
    expect((await db.listSchemas()).schemas.map((s) => s.aggregate)).toEqual(['patient']);
  });

  it("refuses another type's schema and history with EDBX_ERR_TOKEN_OUT_OF_SCOPE, whether or not it exists", async () => {
    const ann = tokens.ann!;
    for (const p of ['/v1/schemas/billing', '/v1/schemas/billing/history', '/v1/schemas/nosuch']) {
      const r = await get(p, ann.token);
      expect(r.status, p).toBe(403);
      expect(r.body.code).toBe('EDBX_ERR_TOKEN_OUT_OF_SCOPE');
    }
    expect((await get('/v1/schemas/billing', ann.token)).body.detail).toBe(
      `token ${ann.id} may not access the schema of billing`,
    );
    expect((await get('/v1/schemas/patient', ann.token)).status).toBe(200);
    expect((await get('/v1/schemas/patient/history', ann.token)).status).toBe(200);
    expect((await get('/v1/schemas/billing', tokens.zed!.token)).status).toBe(200);
  });
});
