/**
 * qa-retry #4: a version conflict caused by an earlier event of the same transaction (or CLI stage)
 * reported a "current version" the aggregate does not have and said "reload and retry", which fails
 * the same way every time. It now says which event of the request moved the aggregate (an event's
 * expected version counts the events before it). And every EDBX_ERR_VERSION_CONFLICT problem carries
 * `current_version` (the stored version) and `expected_version` as numbers, typed in the SDK, with an
 * `ETag` of the stored version on a single append's 409, so a client rebases without parsing English.
 * Over HTTP, through the SDK and the built CLI, on real data dirs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventDbxClient, isApiError } from '../../src/client/index.js';
import type { Problem } from '../../src/protocol/index.js';
import { RocksDbEngine } from '../../src/storage/rocksdb/rocksdb-engine.js';
import { type Project, applyArgs, project } from '../helpers/cli.js';
import { type TestServer, get, post, testServer } from '../helpers/http.js';
import { tempDirs } from '../helpers/temp.js';

let dir: string;
let s: TestServer;

const tempDir = tempDirs('edbx-conflict-detail-', { until: 'all' });
beforeAll(async () => {
  dir = await tempDir();
  s = await testServer({ engine: new RocksDbEngine(dir) });
});
afterAll(async () => {
  await s?.close();
});

const ev = (id: string, event_type: string, more: Record<string, unknown> = {}) => ({
  aggregate_type: 'account',
  aggregate_id: id,
  event_type,
  payload: { amount: '1' },
  ...more,
});
const open = async (id: string) =>
  expect(
    (await post(s, `/v1/aggregates/account/${id}/events`, { event_type: 'opened', payload: {} })).status,
  ).toBe(201);
const versionOf = async (id: string) => (await get(s, `/v1/aggregates/account/${id}`)).body.version;

describe('qa-retry #4: a conflict the transaction itself causes says so', () => {
  it('names the earlier event, gives the stored version, and does not say to reload', async () => {
    await open('sv1');
    const size = s.store.size;
    const r = await post(s, '/v1/transactions', {
      events: [ev('sv1', 'debited', { expected_version: 1 }), ev('sv1', 'credited', { expected_version: 1 })],
    });
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({
      code: 'EDBX_ERR_VERSION_CONFLICT',
      event: { index: 1, aggregate_type: 'account', aggregate_id: 'sv1' },
      current_version: 1,
      expected_version: 1,
    });
    expect(r.body.detail).toBe(
      "events[1] (account/sv1): version conflict on account/sv1: expected version 1, but events[0] of this transaction makes it 2: an event's expected_version counts the events before it (the stored version is 1; expect 2, or give expected_version on the first event only)",
    );
    expect(r.body.detail).not.toMatch(/reload|current version is 2/);
    expect(s.store.size).toBe(size);
    expect(await versionOf('sv1')).toBe(1);
    // What the detail says to do commits.
    const fixed = await post(s, '/v1/transactions', {
      events: [ev('sv1', 'debited', { expected_version: 1 }), ev('sv1', 'credited', { expected_version: 2 })],
    });
    expect(fixed.status).toBe(201);
  });

  it('names the last earlier event that moved the aggregate, counting neither other aggregates nor replays', async () => {
    await open('sv2');
    const first = await post(s, '/v1/transactions', {
      events: [ev('sv2', 'credited', { event_id: 'sv2-a' })],
    });
    expect(first.status).toBe(201);
    // events[0] replays sv2-a (it moves nothing; such a mix is refused too, but the conflict comes
    // first); events[1] is on another aggregate; events[2] and [3] move sv2 from 2 to 4.
    const r = await post(s, '/v1/transactions', {
      events: [
        ev('sv2', 'credited', { event_id: 'sv2-a' }),
        ev('other', 'opened'),
        ev('sv2', 'credited'),
        ev('sv2', 'credited'),
        ev('sv2', 'debited', { expected_version: 2 }),
      ],
    });
    expect(r.body).toMatchObject({ current_version: 2, expected_version: 2, event: { index: 4 } });
    expect(r.body.detail).toMatch(
      /expected version 2, but events\[3\] of this transaction makes it 4: .* \(the stored version is 2; expect 4, /,
    );
  });

  it('a conflict with the stored version is unchanged (reload and retry), with the members', async () => {
    await open('sv3');
    const r = await post(s, '/v1/transactions', {
      events: [ev('sv3b', 'opened'), ev('sv3', 'credited', { expected_version: 0 })],
    });
    expect(r.body).toMatchObject({
      code: 'EDBX_ERR_VERSION_CONFLICT',
      current_version: 1,
      expected_version: 0,
    });
    expect(r.body.detail).toBe(
      'events[1] (account/sv3): version conflict on account/sv3: expected version 0, current version is 1; reload and retry',
    );
  });
});

describe('qa-retry #4: every version conflict carries current_version and expected_version', () => {
  it('a single append: the members, and an ETag of the stored version that If-Match then takes', async () => {
    await open('sv4');
    const r = await post(
      s,
      '/v1/aggregates/account/sv4/events',
      { event_type: 'credited', payload: {} },
      {
        'if-match': '"5"',
      },
    );
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({ current_version: 1, expected_version: 5 });
    expect(r.headers.get('etag')).toBe('"1"');
    const rebased = await post(
      s,
      '/v1/aggregates/account/sv4/events',
      { event_type: 'credited', payload: {} },
      {
        'if-match': r.headers.get('etag')!,
      },
    );
    expect(rebased.status).toBe(201);
    // An aggregate that does not exist is at version 0.
    const missing = await post(s, '/v1/aggregates/account/sv-none/events', {
      event_type: 'credited',
      payload: {},
      expected_version: 3,
    });
    expect(missing.body).toMatchObject({ current_version: 0, expected_version: 3 });
    expect(missing.headers.get('etag')).toBe('"0"');
  });

  it('the SDK types them on the problem', async () => {
    await open('sv5');
    const db = new EventDbxClient({ url: s.url, token: s.token });
    const e = await db
      .transaction([
        ev('sv5', 'debited', { expected_version: 1 }),
        ev('sv5', 'credited', { expected_version: 1 }),
      ])
      .catch((x: unknown) => x);
    expect(isApiError(e, 'EDBX_ERR_VERSION_CONFLICT')).toBe(true);
    const problem: Problem = (e as { problem: Problem }).problem;
    const rebaseOn: number | undefined = problem.current_version;
    const expected: number | undefined = problem.expected_version;
    expect([rebaseOn, expected]).toEqual([1, 1]);
  });
});

describe('qa-retry #4: the CLI stage', () => {
  let p: Project;
  beforeAll(async () => {
    p = await project();
  }, 60_000);
  afterAll(() => p?.cleanup());

  it('staging an event whose version an earlier staged event moved names that staged event', async () => {
    expect((await p.cli(applyArgs('account', 'st1', 'opened'))).code).toBe(0);
    const stage = () =>
      p.cli([...applyArgs('account', 'st1', 'credited'), '--stage', '--expected-version', '1']);
    expect((await stage()).code).toBe(0);
    const second = await stage();
    expect(second.code).toBe(1);
    expect(second.stderr.trim()).toBe(
      "error: version conflict on account/st1: expected version 1, but staged event #1 makes it 2: an event's --expected-version counts the events staged before it (the stored version is 1; expect 2, or give --expected-version on the first event only) [EDBX_ERR_VERSION_CONFLICT]",
    );
  }, 60_000);
});
