/**
 * qa-retry #2: `If-Match` on `POST /v1/transactions`, and `If-None-Match: *` on `POST …/events`, were
 * ignored and the write happened unconditionally; a client carrying the account's ETag forward lost its
 * guard without an error. The append now takes `If-None-Match: *` as expected version 0 (and refuses any
 * other value), and every other write refuses both headers with a 400 saying what to do instead,
 * writing nothing. Over HTTP, on a real data dir.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pluginFeature } from '../../src/server/routes/plugins.js';
import { schemaFeature } from '../../src/server/routes/schemas.js';
import { tokenFeature } from '../../src/server/routes/tokens.js';
import { RocksDbEngine } from '../../src/storage/rocksdb/rocksdb-engine.js';
import { type TestServer, get, post, testServer } from '../helpers/http.js';
import { tempDirs } from '../helpers/temp.js';

let dir: string;
let s: TestServer;

const tempDir = tempDirs('edbx-preconditions-', { until: 'all' });
beforeAll(async () => {
  dir = await tempDir();
  s = await testServer({
    engine: new RocksDbEngine(dir),
    // These features' routes need no keys (they ignore the secure store they are given).
    extraRoutes: [tokenFeature, schemaFeature, pluginFeature].map(
      (f) => (app, ctx) => f.routes!(app, ctx, undefined as never),
    ),
  });
  expect(
    (await post(s, '/v1/aggregates/account/t1/events', { event_type: 'opened', payload: {} })).status,
  ).toBe(201);
});
afterAll(async () => {
  await s?.close();
});

const credit = (id: string) => ({
  aggregate_type: 'account',
  aggregate_id: id,
  event_type: 'credited',
  payload: { amount: '1' },
});
/** The body of a single append. */
const credited = { event_type: 'credited', payload: { amount: '1' } };
const version = async (id: string) => (await get(s, `/v1/aggregates/account/${id}`)).body.version;

describe('qa-retry #2: POST /v1/transactions refuses If-Match and If-None-Match', () => {
  it.each([
    ['if-match', '"999"'],
    ['if-match', 'W/"x"'],
    // Even the right version: a transaction has none to match, so nothing may look like it was checked.
    ['if-match', '"1"'],
    ['if-match', '*'],
    ['if-none-match', '*'],
  ])('%s: %s is a 400 saying to put expected_version on each event, and nothing is written', async (h, v) => {
    const size = s.store.size;
    const r = await post(s, '/v1/transactions', { events: [credit('t1')] }, { [h]: v });
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('EDBX_ERR_INVALID_ARGUMENT');
    const name = h === 'if-match' ? 'If-Match' : 'If-None-Match';
    expect(r.body.detail).toBe(
      `invalid ${name} ${JSON.stringify(v)}: does not apply to POST /v1/transactions, which has no version to match: put expected_version on each event instead`,
    );
    expect(s.store.size).toBe(size);
    expect(await version('t1')).toBe(1);
  });

  it('without the headers, the same transaction commits', async () => {
    const r = await post(s, '/v1/transactions', { events: [{ ...credit('t2'), expected_version: 0 }] });
    expect(r.status).toBe(201);
  });
});

describe('qa-retry #2: If-None-Match on POST …/events', () => {
  it('`*` on an aggregate that exists is the usual 409 (expected version 0), and nothing is written', async () => {
    const size = s.store.size;
    const r = await post(s, '/v1/aggregates/account/t1/events', credited, { 'if-none-match': '*' });
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({
      code: 'EDBX_ERR_VERSION_CONFLICT',
      current_version: 1,
      expected_version: 0,
    });
    expect(s.store.size).toBe(size);
    expect(await version('t1')).toBe(1);
  });

  it('`*` on an aggregate that does not exist creates it', async () => {
    const r = await post(s, '/v1/aggregates/account/n1/events', credited, { 'if-none-match': '*' });
    expect(r.status).toBe(201);
    expect(r.body.version).toBe(1);
    expect(r.headers.get('etag')).toBe('"1"');
    // Once created, the same request is refused.
    const again = await post(s, '/v1/aggregates/account/n1/events', credited, { 'if-none-match': '*' });
    expect(again.body.code).toBe('EDBX_ERR_VERSION_CONFLICT');
  });

  it('`*` agrees with expected_version 0 and If-Match "0"; another body or If-Match version is a 400', async () => {
    const ok = await post(
      s,
      '/v1/aggregates/account/n2/events',
      { ...credited, expected_version: 0 },
      { 'if-none-match': '*', 'if-match': '"0"' },
    );
    expect(ok.status).toBe(201);
    const size = s.store.size;
    const body = await post(
      s,
      '/v1/aggregates/account/t1/events',
      { ...credited, expected_version: 1 },
      { 'if-none-match': '*' },
    );
    expect([body.status, body.body.code, body.body.detail]).toEqual([
      400,
      'EDBX_ERR_INVALID_ARGUMENT',
      'invalid If-None-Match "*": (only if the aggregate does not exist yet) disagrees with expected_version in the body',
    ]);
    const header = await post(s, '/v1/aggregates/account/t1/events', credited, {
      'if-none-match': '*',
      'if-match': '"1"',
    });
    expect([header.status, header.body.detail]).toEqual([
      400,
      'invalid If-None-Match "*": (only if the aggregate does not exist yet) disagrees with If-Match "1"',
    ]);
    expect(s.store.size).toBe(size);
  });

  it.each(['"1"', 'W/"1"', '"0"', '*, *', ''])(
    'any other value (%j) is a 400, nothing written',
    async (v) => {
      const size = s.store.size;
      const r = await post(s, '/v1/aggregates/account/t1/events', credited, { 'if-none-match': v });
      expect(r.status).toBe(400);
      expect(r.body.code).toBe('EDBX_ERR_INVALID_ARGUMENT');
      expect(r.body.detail).toBe(
        `invalid If-None-Match ${JSON.stringify(v)}: takes only * on an append (only if the aggregate does not exist yet): to append at a version, send If-Match: "<version>"`,
      );
      expect(s.store.size).toBe(size);
    },
  );
});

describe('qa-retry #2: the other writes refuse preconditions', () => {
  const send = async (method: string, url: string, body: unknown, headers: Record<string, string>) => {
    const res = await fetch(`${s.url}${url}`, {
      method,
      headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as { code: string; detail: string } };
  };

  it.each([
    ['POST', '/v1/tokens', { group: 'ops', user: 'bob' }, 'POST /v1/tokens'],
    ['POST', '/v1/schemas', { aggregate: 'order', events: ['placed'] }, 'POST /v1/schemas'],
    ['PATCH', '/v1/schemas/account', { event: 'opened', add: ['x'] }, 'PATCH /v1/schemas/{aggregate}'],
    ['POST', '/v1/plugins/none/replay', { from: 1 }, 'POST /v1/plugins/{name}/replay'],
  ])('%s %s: If-Match and If-None-Match are a 400, nothing is done', async (method, url, body, route) => {
    for (const [h, name] of [
      ['if-match', 'If-Match'],
      ['if-none-match', 'If-None-Match'],
    ] as const) {
      const size = s.store.size;
      const r = await send(method, url, body, { [h]: '"1"' });
      expect([r.status, r.body.code, r.body.detail]).toEqual([
        400,
        'EDBX_ERR_INVALID_ARGUMENT',
        `invalid ${name} "\\"1\\"": does not apply to ${route}, which has no version to match: send the request without it`,
      ]);
      expect(s.store.size).toBe(size);
    }
  });

  it('reads are not concerned: a GET with If-None-Match is answered', async () => {
    const res = await fetch(`${s.url}/v1/aggregates/account/t1`, {
      headers: { authorization: `Bearer ${s.token}`, 'if-none-match': '"1"' },
    });
    expect(res.status).toBe(200);
    await res.body?.cancel();
  });

  it('/openapi.json says which headers the append takes, and that a transaction refuses them', async () => {
    const paths = (await get(s, '/openapi.json')).body.paths;
    const headers = paths['/v1/aggregates/{aggregate_type}/{aggregate_id}/events'].post.parameters
      .filter((p: { in: string }) => p.in === 'header')
      .map((p: { name: string }) => p.name);
    expect(headers).toEqual(['if-match', 'if-none-match']);
    expect(paths['/v1/transactions'].post.description).toMatch(
      /If-Match and If-None-Match are refused with 400 .*put expected_version on each event/,
    );
  });
});
