/**
 * `GET /v1/tokens` and `GET /v1/schemas` answered every record in one response (100k tokens for a
 * hospital group: one huge answer, held whole on both sides). They page like the other listings:
 * bounded pages, opaque cursors, the same coded 400s, and only the page is read from the store.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { hashToken } from '../../src/core/tokens.js';
import { buildServer } from '../../src/server/app.js';
import { FEATURES } from '../../src/server/features.js';
import { addSchemaEvents, createSchema } from '../../src/store/schemas.js';
import { type SecureStore, openSecureStore } from '../../src/store/secure.js';
import { createToken } from '../../src/store/tokens.js';
import { CountingRocksDbEngine } from '../helpers/engine.js';
import { tempDirs } from '../helpers/temp.js';

const TOKENS = 250;
const SCHEMAS = 12;
const by = { issuedBy: { group: 'admin', user: 'jane' } };

let dir: string;
let engine: CountingRocksDbEngine;
let secure: SecureStore;
let app: FastifyInstance;
let admin: string;
const secrets: string[] = [];
let reader: string;

const get = async (url: string, token = admin) => {
  const res = await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });
  return { status: res.statusCode, body: res.json() };
};
const cursorOf = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

/** Every page of a listing (`key` holds its items), following next_cursor. */
async function allPages(url: string, key: string, token = admin) {
  const pages: unknown[][] = [];
  const cursors: string[] = [];
  let cursor: string | null = null;
  do {
    const sep = url.includes('?') ? '&' : '?';
    const res = await get(`${url}${cursor ? `${sep}cursor=${cursor}` : ''}`, token);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    pages.push(res.body[key]);
    cursor = res.body.next_cursor;
    if (cursor !== null) cursors.push(cursor);
  } while (cursor !== null && pages.length < 100);
  return { pages, cursors, items: pages.flat() };
}

const tempDir = tempDirs('edbx-list-paging-', { until: 'all' });
beforeAll(async () => {
  dir = await tempDir();
  engine = new CountingRocksDbEngine(path.join(dir, 'data'));
  // Encrypted, with every feature's routes, as `eventdbx start` opens it: a token's cursor is sealed.
  secure = await openSecureStore(engine, { masterKey: 'mk', dek: 'dek' });
  ({ app } = await buildServer({
    store: secure.store,
    version: 'test',
    restrict: 'false',
    extraRoutes: FEATURES.filter((f) => f.routes).map((f) => (a, ctx) => f.routes!(a, ctx, secure)),
  }));
  const store = secure.store;
  admin = (await createToken(store, { group: 'admin', user: 'root' }, by)).token;
  secrets.push(admin);
  for (let i = 1; i < TOKENS; i++)
    secrets.push((await createToken(store, { group: 'nurses', user: `n-${i}` }, by)).token);
  for (let i = 0; i < SCHEMAS; i++) {
    const aggregate = `type-${String(i).padStart(2, '0')}`;
    await createSchema(store, { aggregate, events: ['a'] }, by);
    await addSchemaEvents(store, aggregate, ['b'], by);
    await addSchemaEvents(store, aggregate, ['c'], by);
  }
  reader = (
    await createToken(
      secure.store,
      { group: 'auditors', user: 'carl', readOnly: true, scopes: ['type-03'] },
      by,
    )
  ).token;
  secrets.push(reader);
}, 120_000);
afterAll(async () => {
  await app?.close();
  await secure?.store.close();
});

describe('GET /v1/tokens pages', () => {
  it('in pages of 100 by default, every token once, without a secret or a hash in a page or cursor', async () => {
    const { pages, cursors, items } = await allPages('/v1/tokens', 'tokens');
    expect(pages.map((p) => p.length)).toEqual([100, 100, TOKENS + 1 - 200]);
    const ids = items.map((t) => (t as { id: string }).id);
    expect(new Set(ids).size).toBe(TOKENS + 1);
    expect(ids.sort()).toEqual(secrets.map((s) => s.slice(0, 11)).sort());
    const text = JSON.stringify(pages) + cursors.map((c) => Buffer.from(c, 'base64url').toString()).join();
    for (const secret of secrets) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(hashToken(secret));
    }
  });

  it('reads only the page from the store: take + 1 token records', async () => {
    const first = await get('/v1/tokens?take=10');
    engine.reset();
    const next = await get(`/v1/tokens?take=10&cursor=${first.body.next_cursor}`);
    expect(next.body.tokens).toHaveLength(10);
    expect(engine.entries.get('K')).toBe(11);
  });

  it('continues from a cursor and skips, in the same order', async () => {
    const { items } = await allPages('/v1/tokens?take=1000', 'tokens');
    const ids = items.map((t) => (t as { id: string }).id);
    const first = await get('/v1/tokens?take=7');
    const second = await get(`/v1/tokens?take=7&cursor=${first.body.next_cursor}`);
    expect([...first.body.tokens, ...second.body.tokens].map((t: { id: string }) => t.id)).toEqual(
      ids.slice(0, 14),
    );
    const skipped = await get(`/v1/tokens?take=5&skip=20&cursor=${first.body.next_cursor}`);
    expect(skipped.body.tokens.map((t: { id: string }) => t.id)).toEqual(ids.slice(27, 32));
    const last = await get(`/v1/tokens?take=1000&skip=${ids.length - 1}`);
    expect(last.body).toEqual({ tokens: [expect.objectContaining({ id: ids.at(-1) })], next_cursor: null });
  });

  it('refuses a bad take, skip or cursor with EDBX_ERR_INVALID_ARGUMENT naming it', async () => {
    const forged = cursorOf({ k: Buffer.from(hashToken(admin)).toString('base64url') });
    for (const [query, name] of [
      ['take=0', 'take'],
      ['take=1001', 'take'],
      ['take=ten', 'take'],
      ['skip=-1', 'skip'],
      ['cursor=not-a-cursor', 'cursor'],
      [`cursor=${cursorOf({ v: 3 })}`, 'cursor'],
      [`cursor=${forged}`, 'cursor'],
    ]) {
      const res = await get(`/v1/tokens?${query}`);
      expect({ query, status: res.status, code: res.body.code }).toEqual({
        query,
        status: 400,
        code: 'EDBX_ERR_INVALID_ARGUMENT',
      });
      expect(res.body.detail).toContain(name);
    }
  });

  it('is still for group admin only', async () => {
    const res = await get('/v1/tokens?take=1', reader);
    expect(res.status).toBe(403);
    expect(res.body.code).toBe('EDBX_ERR_GROUP_NOT_ALLOWED');
  });
});

describe('GET /v1/schemas pages', () => {
  const names = (items: unknown[]) => items.map((s) => (s as { aggregate: string }).aggregate);
  const all = Array.from({ length: SCHEMAS }, (_, i) => `type-${String(i).padStart(2, '0')}`);

  it('by aggregate type, current versions, for any valid token (a scoped one: only its types)', async () => {
    const { pages, items } = await allPages('/v1/schemas?take=5', 'schemas', admin);
    expect(pages.map((p) => p.length)).toEqual([5, 5, 2]);
    expect(names(items)).toEqual(all);
    expect(items.every((s) => (s as { version: number }).version === 3)).toBe(true);
    const scoped = await allPages('/v1/schemas?take=5', 'schemas', reader);
    expect(scoped.pages.map((p) => p.length)).toEqual([1]);
    expect(names(scoped.items)).toEqual(['type-03']);
    // The field the spec documents stays; one page holds them all by default.
    expect(await get('/v1/schemas')).toMatchObject({
      status: 200,
      body: { schemas: expect.any(Array), next_cursor: null },
    });
  });

  it('reads one key per aggregate type of the page, never a schema history', async () => {
    const first = await get('/v1/schemas?take=4');
    engine.reset();
    const next = await get(`/v1/schemas?take=4&cursor=${first.body.next_cursor}`);
    expect(names(next.body.schemas)).toEqual(all.slice(4, 8));
    expect(engine.keys.get('H')).toBe(5);
    expect(engine.entries.get('H')).toBeUndefined();
  });

  it('continues from a cursor and skips', async () => {
    const skipped = await get('/v1/schemas?skip=3&take=2');
    expect(names(skipped.body.schemas)).toEqual(all.slice(3, 5));
    const after = await get(`/v1/schemas?skip=1&take=2&cursor=${skipped.body.next_cursor}`);
    expect(names(after.body.schemas)).toEqual(all.slice(6, 8));
    expect((await get(`/v1/schemas?skip=${SCHEMAS}`)).body).toEqual({ schemas: [], next_cursor: null });
  });

  it('refuses a bad take, skip or cursor with EDBX_ERR_INVALID_ARGUMENT naming it', async () => {
    for (const [query, name] of [
      ['take=0', 'take'],
      ['take=1001', 'take'],
      ['skip=x', 'skip'],
      ['cursor=%%%', 'cursor'],
      [`cursor=${cursorOf({ v: 1 })}`, 'cursor'],
    ]) {
      const res = await get(`/v1/schemas?${query}`, reader);
      expect({ query, status: res.status, code: res.body.code }).toEqual({
        query,
        status: 400,
        code: 'EDBX_ERR_INVALID_ARGUMENT',
      });
      expect(res.body.detail).toContain(name);
    }
  });
});
