/**
 * QA4 finding 2: `GET /v1/aggregates` with a token scoped by `--aggregate` scanned the whole store for
 * every page (with take=1, one request kept the server busy for minutes). A scoped listing must list
 * exactly what the scopes cover, page like the unscoped one, and read only the covered key ranges.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken } from '../../src/store/tokens.js';
import { CountingRocksDbEngine } from '../helpers/engine.js';
import { type TestServer, testServer } from '../helpers/http.js';
import { tempDirs } from '../helpers/temp.js';

const PER_TYPE = 1500;
const pad = (i: number) => String(i).padStart(4, '0');

let dir: string;
let engine: CountingRocksDbEngine;
let server: TestServer;

const get = async (url: string, token: string) => {
  const res = await server.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });
  return { status: res.statusCode, body: res.json() };
};
const names = (body: { aggregates: Array<{ aggregate_type: string; aggregate_id: string }> }) =>
  body.aggregates.map((a) => `${a.aggregate_type}/${a.aggregate_id}`);
const tokenFor = async (scopes: string[]) =>
  (
    await createToken(
      server.store,
      { group: 'auditors', user: 'carl', readOnly: true, scopes },
      { issuedBy: { group: 'local', user: 'test' } },
    )
  ).token;

/** Every page of a listing, following next_cursor; the meta entries and keys the store read. */
async function allPages(query: string, token: string) {
  engine.reset();
  const seen: string[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 100; pages++) {
    const res = await get(`/v1/aggregates?${query}${cursor ? `&cursor=${cursor}` : ''}`, token);
    expect(res.status).toBe(200);
    seen.push(...names(res.body));
    cursor = res.body.next_cursor;
    if (cursor === null) break;
  }
  return { seen, metasRead: engine.entries.get('M') ?? 0, metaKeysRead: engine.keys.get('M') ?? 0 };
}

const tempDir = tempDirs('edbx-scoped-list-', { until: 'all' });
beforeAll(async () => {
  dir = await tempDir();
  engine = new CountingRocksDbEngine(path.join(dir, 'data'));
  server = await testServer({ engine });
  const jane = { issuedBy: { group: 'admin', user: 'jane' } };
  for (const type of ['order', 'patient', 'visit']) {
    for (let from = 0; from < PER_TYPE; from += 500) {
      const batch = Array.from({ length: 500 }, (_, i) => ({
        aggregate_type: type,
        aggregate_id: `${type[0]}-${pad(from + i)}`,
        event_type: 'added',
        payload: {},
      }));
      await server.store.appendMany(batch, jane);
    }
  }
  // Fewer visits than the others: a type scope must cover its own range only.
  for (let i = 0; i < 5; i++) {
    await server.store.append(
      { aggregate_type: 'zvisit', aggregate_id: `z-${i}`, event_type: 'added', payload: {} },
      jane,
    );
  }
}, 60_000);

afterAll(async () => {
  await server.close();
});

describe('GET /v1/aggregates with a scoped token (qa4 #2)', () => {
  it('lists exactly the covered aggregates, in key order, once each, page by page', async () => {
    const scopes = [
      'zvisit',
      'order/o-0007',
      'patient/p-1200',
      'zvisit/z-3',
      'order/o-0007',
      'patient/p-none',
    ];
    const token = await tokenFor(scopes);
    const expected = ['order/o-0007', 'patient/p-1200', 'zvisit/z-0', 'zvisit/z-1', 'zvisit/z-2'];
    expected.push('zvisit/z-3', 'zvisit/z-4');
    for (const take of [1, 2, 100]) {
      const { seen, metasRead, metaKeysRead } = await allPages(`take=${take}`, token);
      expect(seen).toEqual(expected);
      // Only the covered metas are read (one more per page: the probe for a next page).
      expect(metasRead).toBeLessThanOrEqual(expected.length + Math.ceil(expected.length / take));
      expect(metaKeysRead).toBe(0);
    }
    expect((await get('/v1/aggregates?take=2&skip=3', token)).body).toMatchObject({
      aggregates: [{ aggregate_id: 'z-1' }, { aggregate_id: 'z-2' }],
    });
    expect(names((await get('/v1/aggregates?skip=6', token)).body)).toEqual(['zvisit/z-4']);
    expect(names((await get('/v1/aggregates?skip=7', token)).body)).toEqual([]);
    expect(names((await get('/v1/aggregates?type=zvisit&skip=4', token)).body)).toEqual(['zvisit/z-4']);
    expect(names((await get('/v1/aggregates?type=patient', token)).body)).toEqual(['patient/p-1200']);
    expect(names((await get('/v1/aggregates?type=visit', token)).body)).toEqual([]);
  });

  it('pages a type scope like the unscoped listing filtered to it, cursor for cursor', async () => {
    const token = await tokenFor(['visit', 'order/o-1499']);
    const scoped = await allPages('take=1000', token);
    const admin = await allPages('take=1000', server.token);
    const covered = admin.seen.filter((n) => n.startsWith('visit/') || n === 'order/o-1499');
    expect(scoped.seen).toEqual(covered);
    expect(scoped.seen).toHaveLength(PER_TYPE + 1);
    expect(scoped.metasRead).toBeLessThanOrEqual(PER_TYPE + 1 + 2);
    expect(admin.metasRead).toBeGreaterThan(3 * PER_TYPE);
    // A cursor from another listing (into the patients) resumes after it, within the scopes.
    const cursor = Buffer.from(JSON.stringify({ k: 'patient/p-0003' })).toString('base64url');
    const res = await get(`/v1/aggregates?take=2&cursor=${cursor}`, token);
    expect(names(res.body)).toEqual(['visit/v-0000', 'visit/v-0001']);
  });

  it('skips by key: the metas of skipped aggregates are not read out', async () => {
    engine.reset();
    const res = await get('/v1/aggregates?skip=4000&take=3', server.token);
    expect(names(res.body)).toEqual(['visit/v-1000', 'visit/v-1001', 'visit/v-1002']);
    expect(engine.keys.get('M')).toBe(4000);
    expect(engine.entries.get('M')).toBeLessThanOrEqual(4);
  });
});
