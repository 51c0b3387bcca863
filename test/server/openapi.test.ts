/**
 * /openapi.json declares error answers as they are sent (QA item 8: they were declared
 * application/json, text/plain or text/event-stream, and statuses the routes return were missing).
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configurePlugin } from '../../src/plugins/index.js';
import { buildServer } from '../../src/server/app.js';
import { FEATURES } from '../../src/server/features.js';
import { MemoryEngine } from '../../src/storage/memory/memory-engine.js';
import { type SecureStore, openSecureStore } from '../../src/store/secure.js';
import { createToken } from '../../src/store/tokens.js';
import { type TestServer, get, testServer } from '../helpers/http.js';

type Op = { responses: Record<string, { content?: Record<string, { schema?: { properties?: object } }> }> };

describe('OpenAPI error responses', () => {
  let s: TestServer;
  let paths: Record<string, Record<string, Op>>;
  beforeAll(async () => {
    s = await testServer();
    paths = (await get(s, '/openapi.json')).body.paths;
  });
  afterAll(() => s?.close());

  it('declares every error status as application/problem+json with the Problem schema, and 408/414/431/503 everywhere', () => {
    for (const [path, ops] of Object.entries(paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const where = `${method.toUpperCase()} ${path}`;
        expect(Object.keys(op.responses), where).toEqual(
          expect.arrayContaining(['408', '414', '431', '503']),
        );
        for (const [status, res] of Object.entries(op.responses)) {
          if (Number(status) < 400) continue;
          // /health's 503 is also its own health answer (`status: "failing"`, qa2-ops #2): monitors read it.
          const own = where === 'GET /health' && status === '503' ? ['application/json'] : [];
          expect(Object.keys(res.content ?? {}), `${where} ${status}`).toEqual([
            'application/problem+json',
            ...own,
          ]);
          expect(
            res.content!['application/problem+json']!.schema?.properties,
            `${where} ${status}`,
          ).toHaveProperty('code');
        }
      }
    }
  });

  it('declares the statuses the routes really answer', async () => {
    const post = paths['/v1/aggregates/{aggregate_type}/{aggregate_id}/events']!.post!;
    expect(Object.keys(post.responses)).toEqual(
      expect.arrayContaining(['400', '401', '403', '404', '409', '413', '415', '422']),
    );
    for (const [path, ops] of Object.entries(paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const concrete = path.replace(/\{[^}]+\}/g, (m) => (m === '{version}' ? '1' : 'x'));
        for (const init of <Array<{ headers: Record<string, string> }>>[
          { headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' } },
          { headers: { 'content-type': 'text/plain' } },
        ]) {
          const res = await fetch(`${s.url}${concrete}`, {
            method: method.toUpperCase(),
            ...init,
            ...(method === 'get' ? {} : { body: '{}' }),
          });
          await res.body?.cancel();
          if (res.status >= 400)
            expect(
              Object.keys(op.responses),
              `${method.toUpperCase()} ${path} answered ${res.status}`,
            ).toContain(String(res.status));
        }
      }
    }
  });
});

describe('OpenAPI of every feature: statuses by method (qa2-spec #3), query parameters', () => {
  let s: TestServer;
  let paths: Record<string, Record<string, Op>>;
  beforeAll(async () => {
    // Every feature's routes (schemas, tokens, plugins, checkpoint, stream): only the document is read.
    s = await testServer({
      extraRoutes: FEATURES.filter((f) => f.routes).map(
        (f) => (app, ctx) => f.routes!(app, ctx, {} as SecureStore),
      ),
    });
    paths = (await get(s, '/openapi.json')).body.paths;
  });
  afterAll(() => s?.close());

  it('a route of a method with a body declares 413 and 415; a GET declares none of 409, 413, 415, 422', () => {
    expect(paths['/v1/schemas/{aggregate}']?.patch).toBeDefined();
    let gets = 0;
    for (const [path, ops] of Object.entries(paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const statuses = Object.keys(op.responses);
        const where = `${method.toUpperCase()} ${path}`;
        if (method === 'get') {
          gets++;
          for (const status of ['409', '413', '415', '422']) expect(statuses, where).not.toContain(status);
        } else expect(statuses, where).toEqual(expect.arrayContaining(['413', '415']));
      }
    }
    expect(gets).toBeGreaterThan(10);
  });

  const parameter = (path: string, place: 'query' | 'path', name: string) =>
    (paths[path]!.get as unknown as { parameters: Array<Record<string, any>> }).parameters.find(
      (p) => p.in === place && p.name === name,
    )!.schema;
  const query = (path: string, name: string) => parameter(path, 'query', name);

  it('documents whole-number parameters as integers with the range the handler takes, text ones as strings', () => {
    const events = '/v1/aggregates/{aggregate_type}/{aggregate_id}/events';
    const whole = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER };
    const page = { type: 'integer', minimum: 1, maximum: 1000 };
    const upToCurrent = { type: 'integer', minimum: 1 };
    for (const [path, name, range] of [
      [events, 'skip', whole],
      [events, 'take', page],
      ['/v1/aggregates', 'take', page],
      ['/v1/audit', 'take', page],
      ['/v1/aggregates/{aggregate_type}/{aggregate_id}', 'version', upToCurrent],
      [`${events}/recent`, 'take', page],
      [`${events}/{version}/proof`, 'tree_size', upToCurrent],
      ['/v1/aggregates/{aggregate_type}/{aggregate_id}/consistency', 'from', upToCurrent],
      ['/v1/ledger/proof', 'position', upToCurrent],
      ['/v1/ledger/consistency', 'to', upToCurrent],
      ['/v1/plugins/{name}/dead-letters', 'take', page],
      ['/v1/plugins/{name}/dead-letters', 'from', { ...whole, minimum: 1 }],
      ['/v1/events/stream', 'from', whole],
    ] as const) {
      expect(query(path, name), `${path} ${name}`).toEqual(expect.objectContaining(range));
      if (!('maximum' in range)) expect(query(path, name), `${path} ${name}`).not.toHaveProperty('maximum');
    }
    for (const path of [`${events}/{version}`, `${events}/{version}/proof`])
      expect(parameter(path, 'path', 'version'), path).toEqual(expect.objectContaining(upToCurrent));
    expect(query(events, 'cursor')).toMatchObject({ type: 'string' });
    expect(JSON.stringify(paths)).not.toContain('$comment');
  });

  it('still answers a bad whole number with the handler’s own message, not a schema error', async () => {
    const res = await get(s, '/v1/aggregates?take=0');
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('EDBX_ERR_INVALID_ARGUMENT');
    expect(res.body.detail).toMatch(/take/);
    expect(res.body.detail).not.toMatch(/must be/);
  });
});

/**
 * QA-comp #8: every whole-number parameter was declared `minimum: 0`, though the server refuses 0 for
 * most, and take's maximum was not declared. A client validated from the document must send only what
 * the server takes: each declared bound is accepted, and one past it is refused by the handler.
 */
describe('OpenAPI whole-number ranges are the ones the server enforces', () => {
  let secure: SecureStore;
  let app: FastifyInstance;
  let url: string;
  let admin: string;
  let paths: Record<string, Record<string, { parameters?: Array<Record<string, any>> }>>;
  beforeAll(async () => {
    secure = await openSecureStore(new MemoryEngine(), { masterKey: 'mk', dek: 'dek' });
    ({ app } = await buildServer({
      store: secure.store,
      version: 'test',
      restrict: 'false',
      extraRoutes: FEATURES.filter((f) => f.routes).map((f) => (a, ctx) => f.routes!(a, ctx, secure)),
    }));
    const by = { issuedBy: { group: 'admin', user: 'root' } };
    admin = (await createToken(secure.store, { group: 'admin', user: 'root' }, by)).token;
    await configurePlugin(secure.store, 'log', { level: 'info' }, by);
    for (const name of ['Jane', 'Jane D'])
      await secure.store.append(
        { aggregate_type: 'patient', aggregate_id: 'p-1', event_type: 'added', payload: { name } },
        by,
      );
    await app.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    paths = JSON.parse((await app.inject({ url: '/openapi.json' })).body).paths;
  });
  afterAll(async () => {
    await app?.close();
    await secure?.store.close();
  });

  /** Valid values for the other parameters of a path, so only the one under test decides. */
  const base = (path: string): Record<string, string> =>
    path.endsWith('/consistency') ? { from: '1' } : path === '/v1/ledger/proof' ? { position: '1' } : {};

  /** Status, code and detail of a GET; a stream is answered by its headers, then dropped. */
  async function fetchOne(path: string) {
    const abort = new AbortController();
    const res = await fetch(`${url}${path}`, {
      headers: { authorization: `Bearer ${admin}` },
      signal: abort.signal,
    });
    if (res.headers.get('content-type')?.startsWith('text/event-stream')) {
      abort.abort();
      return { status: res.status, body: undefined };
    }
    const body = (await res.json()) as { code?: string; detail?: string };
    return { status: res.status, body };
  }

  it('takes each declared minimum and maximum, and refuses one past either with the handler’s message', async () => {
    const checked: string[] = [];
    for (const [template, ops] of Object.entries(paths)) {
      for (const p of ops.get?.parameters ?? []) {
        if (p.schema?.type !== 'integer') continue;
        const { minimum, maximum } = p.schema as { minimum: number; maximum?: number };
        expect(minimum, `${template} ${p.name}`).toBeDefined();
        const at = (value: number) => {
          const values: Record<string, string> = {
            aggregate_type: 'patient',
            aggregate_id: 'p-1',
            version: '1',
            name: 'log',
            ...(p.in === 'path' ? { [p.name]: String(value) } : {}),
          };
          const path = template.replace(/\{([^}]+)\}/g, (_, n: string) => values[n]!);
          const q = new URLSearchParams({
            ...base(template),
            ...(p.in === 'query' ? { [p.name]: String(value) } : {}),
          });
          return `${path}${q.size ? `?${q}` : ''}`;
        };
        const bounds: Array<[number, number]> = [[minimum, minimum - 1]];
        if (maximum !== undefined) bounds.push([maximum, maximum + 1]);
        for (const [inside, outside] of bounds) {
          const ok = await fetchOne(at(inside));
          // A stream may not start past the next position the store will write (a position saved
          // before a restore): the largest `from` is taken as a number, then refused with a 416.
          const beyond = template === '/v1/events/stream' && inside === maximum;
          expect({ at: at(inside), status: ok.status, code: beyond ? ok.body?.code : undefined }).toEqual({
            at: at(inside),
            status: beyond ? 416 : 200,
            code: beyond ? 'EDBX_ERR_POSITION_BEYOND_HEAD' : undefined,
          });
          const refused = await fetchOne(at(outside));
          expect({ at: at(outside), status: refused.status }).toEqual({ at: at(outside), status: 400 });
          // The handler's own message, not the validator's (`must be integer`, `must be >= 1`).
          expect(refused.body?.detail, at(outside)).not.toMatch(/must be (?:integer|string|[<>]=)/);
          expect(refused.body?.code, at(outside)).toMatch(/^EDBX_ERR_INVALID_/);
        }
        checked.push(`${p.in} ${template} ${p.name}`);
      }
    }
    // Every whole-number parameter of the API: 23 in queries and the two {version}s in paths.
    expect(checked.filter((c) => c.startsWith('query'))).toHaveLength(23);
    expect(checked.filter((c) => c.startsWith('path'))).toHaveLength(2);
  });
});
