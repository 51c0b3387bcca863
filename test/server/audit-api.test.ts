/**
 * The audit log over HTTP (auditor QA, finding 11: `GET /v1/aggregates/%24audit/log/events` is refused,
 * so an auditor with HTTP access only could not read it). `GET /v1/audit` pages the entries as full
 * EventRecords, each provable against a signed checkpoint; `GET /v1/audit/verify` answers the report of
 * `eventdbx audit verify --json`. Both need an admin token; both are in the SDK.
 */
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { EventDbxApiError, EventDbxClient } from '../../src/client/index.js';
import type { EventRecord } from '../../src/core/event.js';
import { verifyInclusion } from '../../src/core/merkle/index.js';
import { buildServer } from '../../src/server/app.js';
import { FEATURES } from '../../src/server/features.js';
import { MemoryEngine } from '../../src/storage/memory/memory-engine.js';
import { verifyAuditLog } from '../../src/store/audit-state.js';
import * as K from '../../src/store/keys.js';
import { type SecureStore, openSecureStore } from '../../src/store/secure.js';
import { createToken } from '../../src/store/tokens.js';

const DAY = 86_400_000;
const START = Date.parse('2024-03-01T00:00:00Z');
const issuedBy = { issuedBy: { group: 'local', user: 'test' } };

interface Server {
  secure: SecureStore;
  app: FastifyInstance;
  admin: string;
  close(): Promise<void>;
}

/** A server with every feature's routes, as `eventdbx start` registers them, and an admin token. */
async function server(): Promise<Server> {
  const secure = await openSecureStore(new MemoryEngine(), { masterKey: 'mk', dek: 'dek' });
  const { app } = await buildServer({
    store: secure.store,
    version: 'test',
    restrict: 'false',
    extraRoutes: FEATURES.filter((f) => f.routes).map((f) => (a, ctx) => f.routes!(a, ctx, secure)),
  });
  const { token: admin } = await createToken(secure.store, { group: 'admin', user: 'root' }, issuedBy);
  return {
    secure,
    app,
    admin,
    close: async () => {
      await app.close();
      await secure.store.close();
    },
  };
}

const call = async (s: Server, method: 'GET' | 'POST', url: string, token: string | null, body?: object) => {
  const res = await s.app.inject({
    method,
    url,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    ...(body ? { payload: body } : {}),
  });
  return { status: res.statusCode, type: res.headers['content-type'], body: res.json() };
};

let s: Server;
let doctor: string;
let readOnlyAdmin: string;
let scopedAdmin: string;
const get = (url: string, token: string | null = s.admin) => call(s, 'GET', url, token);

beforeAll(async () => {
  const token = async (o: Parameters<typeof createToken>[1]) =>
    (await createToken(s.secure.store, o, issuedBy)).token;
  // Administrative actions, one a day from START (the store's clock is set for each); the tokens of
  // the tests the day before.
  vi.useFakeTimers({ toFake: ['Date'] });
  try {
    const at = (day: number) => vi.setSystemTime(START + day * DAY);
    at(-1);
    s = await server();
    doctor = await token({ group: 'doctors', user: 'house' });
    readOnlyAdmin = await token({ group: 'admin', user: 'auditor', readOnly: true });
    scopedAdmin = await token({ group: 'admin', user: 'ward', scopes: ['patient'] });
    const ids: string[] = [];
    for (let day = 0; day < 5; day++) {
      at(day);
      const r = await call(s, 'POST', '/v1/tokens', s.admin, { group: 'nurses', user: `n-${day}` });
      expect(r.status).toBe(201);
      ids.push(r.body.id);
    }
    at(5);
    expect((await call(s, 'POST', `/v1/tokens/${ids[0]}/revoke`, s.admin)).status).toBe(200);
    at(6);
    const schema = { aggregate: 'patient', events: ['patient-added'] };
    expect((await call(s, 'POST', '/v1/schemas', s.admin, schema)).status).toBe(201);
  } finally {
    vi.useRealTimers();
  }
});
afterAll(() => s?.close());

/** Every entry, following next_cursor from `first`. */
async function walk(first: string): Promise<EventRecord[]> {
  const out: EventRecord[] = [];
  let url: string | undefined = first;
  while (url !== undefined) {
    const r = await get(url);
    expect(r.status, url).toBe(200);
    out.push(...r.body.entries);
    const next = r.body.next_cursor as string | null;
    url = next === null ? undefined : `${first}${first.includes('?') ? '&' : '?'}cursor=${next}`;
  }
  return out;
}

describe('GET /v1/audit (finding 11)', () => {
  it('lists what admins did, oldest first, as the EventRecords `audit list` shows', async () => {
    const r = await get('/v1/audit');
    expect(r.status).toBe(200);
    expect(r.body.next_cursor).toBeNull();
    const entries = r.body.entries as EventRecord[];
    expect(entries).toEqual(JSON.parse(JSON.stringify(await s.secure.store.auditLog())));
    expect(entries.map((e) => e.event_type)).toEqual([
      ...Array(4 + 5).fill('token-generated'),
      'token-revoked',
      'schema-created',
    ]);
    expect(entries.map((e) => e.version)).toEqual(entries.map((_, i) => i + 1));
    expect(entries[5]).toMatchObject({
      aggregate_type: '$audit',
      aggregate_id: 'log',
      payload: { group: 'nurses', user: 'n-1' },
      metadata: {
        created_at: new Date(START + DAY).toISOString(),
        issued_by: { group: 'admin', user: 'root' },
      },
    });
  });

  it('serves entries an auditor proves against the signed checkpoint: leaf recomputed, ledger proof walked', async () => {
    const cp = (await get('/v1/checkpoint')).body as { size: number; root: string };
    const hex = (h: string) => Buffer.from(h, 'hex');
    for (const e of (await get('/v1/audit')).body.entries as EventRecord[]) {
      const { hash, merkle_root: _root, ...content } = e;
      const leaf = createHash('sha256')
        .update(Buffer.concat([Buffer.from([0]), Buffer.from(canonicalize(content)!)]))
        .digest();
      expect(leaf.toString('hex')).toBe(hash);
      const proof = (await get(`/v1/ledger/proof?position=${e.position}&tree_size=${cp.size}`)).body;
      expect(verifyInclusion(leaf, proof.leaf_index, cp.size, proof.audit_path.map(hex), hex(cp.root))).toBe(
        true,
      );
    }
  });

  it('pages with take and cursor, skips, and filters by since and from_position (the cursor keeps them)', async () => {
    const all = (await get('/v1/audit')).body.entries as EventRecord[];
    const versions = (es: readonly EventRecord[]) => es.map((e) => e.version);
    const first = await get('/v1/audit?take=4');
    expect(versions(first.body.entries)).toEqual([1, 2, 3, 4]);
    expect(typeof first.body.next_cursor).toBe('string');
    expect(versions(await walk('/v1/audit?take=4'))).toEqual(versions(all));
    expect(versions(await walk('/v1/audit?take=1'))).toEqual(versions(all));
    expect(versions((await get('/v1/audit?skip=8&take=2')).body.entries)).toEqual([9, 10]);
    const last = await get('/v1/audit?skip=9&take=2');
    expect(versions(last.body.entries)).toEqual([10, 11]);
    expect(last.body.next_cursor).toBeNull();
    expect((await get('/v1/audit?skip=11')).body).toEqual({ entries: [], withheld: [], next_cursor: null });
    expect((await get('/v1/audit?take=1000')).body.entries).toHaveLength(all.length);

    // Day 2 on: the tokens of n-2, n-3, n-4, the revocation and the schema.
    const since = new Date(START + 2 * DAY).toISOString();
    const later = await walk(`/v1/audit?since=${since}&take=2`);
    expect(later.map((e) => e.event_type)).toEqual([
      'token-generated',
      'token-generated',
      'token-generated',
      'token-revoked',
      'schema-created',
    ]);
    expect(later.every((e) => e.metadata.created_at >= since)).toBe(true);
    expect(versions((await get('/v1/audit?since=2024-03-06&skip=1')).body.entries)).toEqual([11]);
    expect((await get('/v1/audit?since=2999-01-01')).body).toEqual({
      entries: [],
      withheld: [],
      next_cursor: null,
    });

    // By ledger position (what was committed after a backup of that many events), kept by the cursor.
    const from = all[7]!.position;
    expect(versions(await walk(`/v1/audit?from_position=${from}&take=2`))).toEqual([8, 9, 10, 11]);
    expect(versions(await walk(`/v1/audit?from_position=${from + 1}&take=2`))).toEqual([9, 10, 11]);
    expect(
      versions((await get(`/v1/audit?from_position=${from}&since=${since}&skip=1`)).body.entries),
    ).toEqual([9, 10, 11]);
    expect((await get(`/v1/audit?from_position=${all.at(-1)!.position + 1}`)).body.entries).toEqual([]);
  });

  it('needs an admin token (or one issued with --audit): 401 without one, 403 for another group or a restricted admin', async () => {
    for (const path of ['/v1/audit', '/v1/audit/verify']) {
      const none = await get(path, null);
      expect(none.status, path).toBe(401);
      expect(none.type).toMatch(/^application\/problem\+json/);
      expect(none.body.code).toBe('EDBX_ERR_TOKEN_MISSING');
      const other = await get(path, doctor);
      expect(other.status, path).toBe(403);
      expect(other.body.code).toBe('EDBX_ERR_GROUP_NOT_ALLOWED');
      expect((await get(path, scopedAdmin)).body.code).toBe('EDBX_ERR_ADMIN_TOKEN_RESTRICTED');
      // Reading needs no write access: a read-only admin token is what to give an auditor.
      expect((await get(path, readOnlyAdmin)).status, path).toBe(200);
    }
    // System types stay refused on the aggregate routes.
    expect((await get('/v1/aggregates/%24audit/log/events')).status).toBe(400);
  });

  it('refuses bad query values with the coded 400s of the other listings', async () => {
    const cases: Array<[string, string]> = [
      ['since=yesterday-ish', 'since'],
      ['since=', 'since'],
      ['take=0', 'take'],
      ['take=1001', 'take'],
      ['take=x', 'take'],
      ['skip=-1', 'skip'],
      ['skip=1.5', 'skip'],
      ['cursor=not-a-cursor', 'cursor'],
      [`cursor=${Buffer.from(JSON.stringify({ k: 'patient/p-1' })).toString('base64url')}`, 'cursor'],
      ['since=2024-03-01&since=2024-03-02', 'since'],
      ['from_position=0', 'from_position'],
      ['from_position=-1', 'from_position'],
      ['from_position=1.5', 'from_position'],
      ['from_position=x', 'from_position'],
      ['from_position=', 'from_position'],
      ['from_position=99999999999999999', 'from_position'],
      ['type=patient', 'type'],
    ];
    for (const [query, name] of cases) {
      const r = await get(`/v1/audit?${query}`);
      expect(r.status, query).toBe(400);
      expect(r.type, query).toMatch(/^application\/problem\+json/);
      expect(r.body.code, query).toBe('EDBX_ERR_INVALID_ARGUMENT');
      expect(r.body.detail, query).toContain(name);
    }
    // The aggregate event listing refuses the same values with the same code.
    for (const query of ['take=0', 'take=1001', 'skip=-1', 'cursor=not-a-cursor'])
      expect((await get(`/v1/aggregates/patient/p-1/events?${query}`)).body.code).toBe(
        'EDBX_ERR_INVALID_ARGUMENT',
      );
  });
});

describe('GET /v1/audit/verify (finding 11)', () => {
  it('answers the report of `audit verify --json`, ok', async () => {
    const r = await get('/v1/audit/verify');
    expect(r.status).toBe(200);
    expect(r.body).toEqual(JSON.parse(JSON.stringify(await verifyAuditLog(s.secure.store))));
    expect(r.body).toMatchObject({
      ok: true,
      report: { aggregate_type: '$audit', aggregate_id: 'log', ok: true, version: 11 },
      state: { ok: true, problems: [] },
    });
  });

  it('answers 200 with ok false when an audit entry was changed through the engine, naming it', async () => {
    const t = await server();
    try {
      for (const user of ['a', 'b', 'c'])
        await createToken(t.secure.store, { group: 'nurses', user }, issuedBy);
      expect((await call(t, 'GET', '/v1/audit/verify', t.admin)).body.ok).toBe(true);
      // One flipped byte of the sealed entry 2, as someone with the data dir but not the keys can do.
      const key = K.eventKey('$audit', 'log', 2);
      const v = Buffer.from((await t.secure.store.engine.get('main', key))!);
      v[30] = v[30]! ^ 0x04;
      await t.secure.store.engine.write([{ type: 'put', space: 'main', key, value: v }], { sync: true });
      t.secure.store.clearCache();
      const r = await call(t, 'GET', '/v1/audit/verify', t.admin);
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ ok: false, report: { ok: false, first_bad_version: 2 } });
      expect(r.body.state).toBeUndefined();
      // The listing refuses to serve what does not open, rather than serve less.
      const list = await call(t, 'GET', '/v1/audit', t.admin);
      expect(list.status).toBe(500);
      expect(list.body.code).toBe('EDBX_ERR_INTEGRITY');
    } finally {
      await t.close();
    }
  });

  it('answers ok false when a record the log vouches for was removed (the log itself verifies)', async () => {
    const t = await server();
    try {
      const schema = { aggregate: 'order', events: ['placed'] };
      expect((await call(t, 'POST', '/v1/schemas', t.admin, schema)).status).toBe(201);
      await t.secure.store.engine.write([{ type: 'del', space: 'main', key: K.schemaKey('order', 1) }], {
        sync: true,
      });
      const r = await call(t, 'GET', '/v1/audit/verify', t.admin);
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ ok: false, report: { ok: true }, state: { ok: false } });
      expect(r.body.state.problems).toEqual([expect.stringContaining('schema order')]);
    } finally {
      await t.close();
    }
  });
});

describe('OpenAPI', () => {
  it('documents both routes: query parameters, the answers, and problem+json errors', async () => {
    const doc = (await s.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const list = doc.paths['/v1/audit'].get;
    expect(list.parameters.map((p: { name: string; in: string }) => `${p.in}:${p.name}`).sort()).toEqual([
      'query:cursor',
      'query:from_position',
      'query:since',
      'query:skip',
      'query:take',
    ]);
    const page = list.responses['200'].content['application/json'].schema;
    expect(Object.keys(page.properties).sort()).toEqual(['entries', 'next_cursor', 'withheld']);
    expect(Object.keys(page.properties.entries.items.properties)).toEqual(
      expect.arrayContaining(['hash', 'merkle_root', 'position', 'version', 'metadata']),
    );
    const verify = doc.paths['/v1/audit/verify'].get;
    const report = verify.responses['200'].content['application/json'].schema;
    expect(Object.keys(report.properties).sort()).toEqual(['ok', 'report', 'state']);
    for (const [op, statuses] of [
      [list, ['400', '401', '403', '500']],
      [verify, ['401', '403']],
    ] as const) {
      expect(Object.keys(op.responses)).toEqual(expect.arrayContaining([...statuses]));
      for (const status of statuses)
        expect(Object.keys(op.responses[status].content)).toEqual(['application/problem+json']);
    }
  });
});

describe('the SDK: auditLog() and verifyAuditLog()', () => {
  it('pages the audit log with since, from_position, take and cursor, and verifies it', async () => {
    const url = await s.app.listen({ port: 0, host: '127.0.0.1' });
    const db = new EventDbxClient({ url, token: readOnlyAdmin });
    const all = (await db.auditLog()).entries;
    expect(all.map((e) => e.version)).toEqual(Array.from({ length: 11 }, (_, i) => i + 1));
    const since = new Date(START + 2 * DAY).toISOString();
    const seen: EventRecord[] = [];
    let page = await db.auditLog({ since, take: 2 });
    seen.push(...page.entries);
    while (page.next_cursor !== null) {
      page = await db.auditLog({ since, take: 2, cursor: page.next_cursor });
      seen.push(...page.entries);
    }
    expect(seen).toEqual(all.filter((e) => e.metadata.created_at >= since));
    expect(seen).toHaveLength(5);
    expect((await db.auditLog({ skip: 10 })).entries.map((e) => e.version)).toEqual([11]);
    const after = await db.auditLog({ from_position: all[8]!.position, take: 1 });
    expect(after.entries.map((e) => e.version)).toEqual([9]);
    const rest = await db.auditLog({ from_position: all[8]!.position, cursor: after.next_cursor! });
    expect(rest.entries.map((e) => e.version)).toEqual([10, 11]);

    const v = await db.verifyAuditLog();
    expect(v).toMatchObject({ ok: true, report: { ok: true, version: 11 }, state: { ok: true } });

    const refused = await new EventDbxClient({ url, token: doctor }).verifyAuditLog().catch((e) => e);
    expect(refused).toBeInstanceOf(EventDbxApiError);
    expect(refused.code).toBe('EDBX_ERR_GROUP_NOT_ALLOWED');
    const bad = await db.auditLog({ since: 'yesterday-ish' }).catch((e) => e);
    expect(bad.code).toBe('EDBX_ERR_INVALID_ARGUMENT');
  });
});
