/**
 * /openapi.json declares error answers as they are sent (QA item 8: they were declared
 * application/json, text/plain or text/event-stream, and statuses the routes return were missing).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FEATURES } from '../../src/server/features.js';
import type { SecureStore } from '../../src/store/secure.js';
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

  it('declares every error status as application/problem+json with the Problem schema, and 408/431/503 everywhere', () => {
    for (const [path, ops] of Object.entries(paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const where = `${method.toUpperCase()} ${path}`;
        expect(Object.keys(op.responses), where).toEqual(expect.arrayContaining(['408', '431', '503']));
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

  const query = (path: string, name: string) =>
    (paths[path]!.get as unknown as { parameters: Array<Record<string, any>> }).parameters.find(
      (p) => p.in === 'query' && p.name === name,
    )!.schema;

  it('documents whole-number parameters as integers, and text ones as strings', () => {
    const events = '/v1/aggregates/{aggregate_type}/{aggregate_id}/events';
    for (const [path, name] of [
      [events, 'skip'],
      [events, 'take'],
      ['/v1/aggregates/{aggregate_type}/{aggregate_id}', 'version'],
      [`${events}/recent`, 'take'],
      [`${events}/{version}/proof`, 'tree_size'],
      ['/v1/aggregates/{aggregate_type}/{aggregate_id}/consistency', 'from'],
      ['/v1/ledger/proof', 'position'],
      ['/v1/ledger/consistency', 'to'],
      ['/v1/events/stream', 'from'],
    ] as const)
      expect(query(path, name), `${path} ${name}`).toMatchObject({ type: 'integer', minimum: 0 });
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
