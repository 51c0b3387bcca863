/**
 * Pen-test finding 8: a token scoped to one aggregate learned whether an event id exists anywhere in
 * the store, writing nothing: with `expected_version: 0` on its own aggregate, an id used elsewhere
 * was answered EDBX_ERR_EVENT_ID_CONFLICT and an unknown one EDBX_ERR_VERSION_CONFLICT. An id used on
 * another aggregate is now refused only where the append would otherwise be written, so every refusal
 * that writes nothing is the one an unused id gets; idempotent retries of the caller's own events work
 * as before. Over HTTP, on a real data dir.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RocksDbEngine } from '../../src/storage/rocksdb/rocksdb-engine.js';
import { createToken } from '../../src/store/tokens.js';
import { type TestServer, get, post, testServer } from '../helpers/http.js';
import { tempDirs } from '../helpers/temp.js';

const HOST = { issuedBy: { group: 'local', user: 'test' } };
const USED = 'eid-p2-xyz';
const UNUSED = 'does-not-exist-123';

let dir: string;
let s: TestServer;
let doc: string;

const tempDir = tempDirs('edbx-event-id-scope-', { until: 'all' });
beforeAll(async () => {
  dir = await tempDir();
  s = await testServer({ engine: new RocksDbEngine(dir) });
  doc = (await createToken(s.store, { group: 'doctors', user: 'house', scopes: ['patient/p-001'] }, HOST))
    .token;
  // Another patient's event, with a meaningful client id the doctor may not learn of.
  const other = await post(s, '/v1/aggregates/patient/p-002/events', {
    event_type: 'patient-updated',
    payload: { secret: 'x' },
    event_id: USED,
  });
  expect(other.status).toBe(201);
  const own = await post(s, '/v1/aggregates/patient/p-001/events', {
    event_type: 'patient-added',
    payload: { name: 'Ann' },
  });
  expect(own.status).toBe(201);
});
afterAll(async () => {
  await s?.close();
});

const as = (token: string) => ({ authorization: `Bearer ${token}` });
const answer = (r: { status: number; body: any }) => [r.status, r.body.code, r.body.detail];
const append = (token: string, body: Record<string, unknown>) =>
  post(s, '/v1/aggregates/patient/p-001/events', { event_type: 'patient-updated', ...body }, as(token));

describe('pen-test #8: no event id oracle across scopes', () => {
  it('answers an id used on another aggregate as an unused one when the expected version is wrong', async () => {
    const size = s.store.size;
    const [used, unused] = [
      await append(doc, { payload: { a: '1' }, event_id: USED, expected_version: 0 }),
      await append(doc, { payload: { a: '1' }, event_id: UNUSED, expected_version: 0 }),
    ];
    expect(answer(used)).toEqual(answer(unused));
    expect(answer(used)).toEqual([
      409,
      'EDBX_ERR_VERSION_CONFLICT',
      'version conflict on patient/p-001: expected version 0, current version is 1; reload and retry',
    ]);
    expect(s.store.size).toBe(size);
  });

  it('in a transaction, and for a token with no writes left, every refusal that writes nothing matches', async () => {
    const event = (event_id: string) => ({
      aggregate_type: 'patient',
      aggregate_id: 'p-001',
      event_type: 'patient-updated',
      payload: { a: '2' },
      event_id,
    });
    const stale = { ...event('stale-1'), expected_version: 0 };
    const tx = async (id: string) =>
      answer(await post(s, '/v1/transactions', { events: [event(id), stale] }, as(doc)));
    expect(await tx(USED)).toEqual(await tx(UNUSED));
    expect((await tx(USED))[1]).toBe('EDBX_ERR_VERSION_CONFLICT');

    const spent = (
      await createToken(
        s.store,
        { group: 'doctors', user: 'wilson', scopes: ['patient/p-001'], limit: 1 },
        HOST,
      )
    ).token;
    expect((await append(spent, { payload: { by: 'wilson' } })).status).toBe(201);
    const [used, unused] = [
      await append(spent, { payload: { a: '3' }, event_id: USED }),
      await append(spent, { payload: { a: '3' }, event_id: UNUSED }),
    ];
    expect(answer(used)).toEqual(answer(unused));
    expect(used.body.code).toBe('EDBX_ERR_TOKEN_EXHAUSTED');
  });

  it('still refuses the id where the append would be written: nothing written, nothing charged', async () => {
    const limited = await createToken(
      s.store,
      { group: 'doctors', user: 'cuddy', scopes: ['patient/p-001'], limit: 5 },
      HOST,
    );
    const size = s.store.size;
    const r = await append(limited.token, { payload: { a: '4' }, event_id: USED });
    expect([r.status, r.body.code]).toEqual([409, 'EDBX_ERR_EVENT_ID_CONFLICT']);
    expect(r.body.detail).not.toContain('p-002');
    expect(s.store.size).toBe(size);
    expect([...s.store.tokens.values()].find((t) => t.id === limited.id)!.remaining).toBe(5);
    expect((await s.store.readEvents('main', 'patient', 'p-002')).map((e) => e.metadata.event_id)).toEqual([
      USED,
    ]);
  });

  it("keeps idempotent retries of the caller's own events: same answer, even with a stale expected version", async () => {
    const version = (await get(s, '/v1/aggregates/patient/p-001')).body.version as number;
    const body = { payload: { a: '5' }, event_id: 'doc-own-1', expected_version: version };
    const first = await append(doc, body);
    expect(first.status).toBe(201);
    const again = await append(doc, body);
    expect([again.status, again.body]).toEqual([200, first.body]);
    const changed = await append(doc, { ...body, payload: { a: 'other' } });
    expect([changed.status, changed.body.code]).toEqual([409, 'EDBX_ERR_EVENT_ID_CONFLICT']);
  });
});
