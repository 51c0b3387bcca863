/**
 * A server whose clock steps back (qa-time finding 2) records the next events at the newest time
 * already recorded, logs one warning per episode saying by how much and at what time times are held,
 * logs when the clock has caught up, and shows the lag in /metrics (`eventdbx_clock_behind_seconds`).
 * Over HTTP on RocksDB, with the store's injectable clock standing in for the system clock.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RocksDbEngine } from '../../src/storage/rocksdb/rocksdb-engine.js';
import { type TestServer, get, post, testServer } from '../helpers/http.js';
import { tempDirs } from '../helpers/temp.js';
import { createToken } from '../../src/store/tokens.js';

const T0 = Date.parse('2026-11-28T02:26:33.234Z');
const HOUR = 3_600_000;

const tempDir = tempDirs('edbx-clock-lag-');
let wall: number;
let s: TestServer;

beforeEach(async () => {
  wall = T0;
  s = await testServer({
    engine: new RocksDbEngine(await tempDir()),
    logs: true,
    storeOptions: { now: () => new Date(wall) },
  });
});
afterEach(() => s?.close());

const deposit = async (amt: string) => {
  const r = await post(s, '/v1/aggregates/acct/a1/events', { event_type: 'deposit', payload: { amt } });
  expect(r.status).toBe(201);
  return r.body.metadata.created_at as string;
};
const clockLines = () => s.logs.filter((l) => String(l.msg).startsWith('the system clock '));
const behindSeconds = async () => {
  const text = (await get(s, '/metrics')).body as string;
  expect(text).toContain('# TYPE eventdbx_clock_behind_seconds gauge');
  return Number(/^eventdbx_clock_behind_seconds (\S+)$/m.exec(text)?.[1]);
};

describe('a server whose clock steps back (qa-time #2)', () => {
  it('holds the times, warns once an episode, says when the clock caught up, and shows the lag', async () => {
    const v2 = await deposit('100');
    expect(await behindSeconds()).toBe(0);
    wall -= 3 * HOUR;
    const v3 = await deposit('30');
    expect(v3).toBe(v2);
    const agg = (await get(s, '/v1/aggregates/acct/a1')).body;
    expect(agg.updated_at).toBe(v2);
    expect(agg.created_at <= agg.updated_at).toBe(true);
    await deposit('1');
    expect(await behindSeconds()).toBe(3 * 3600);

    const warned = clockLines();
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ level: 40, clock_behind_ms: 3 * HOUR, held_at: v2 });
    expect(warned[0]!.msg).toContain(
      `the system clock is 3 h 0 min behind the newest time this store recorded`,
    );
    expect(warned[0]!.msg).toContain(`held at ${v2} until the clock catches up`);

    wall = T0 + 60_000; // caught up
    const v5 = await deposit('2');
    expect(v5).toBe(new Date(T0 + 60_000).toISOString());
    expect(await behindSeconds()).toBe(0);
    expect(clockLines().slice(1)).toEqual([
      expect.objectContaining({ level: 30, msg: expect.stringContaining('caught up') }),
    ]);

    wall -= 10 * 60_000; // a new episode is warned about again
    expect(await deposit('3')).toBe(v5);
    expect(clockLines().filter((l) => l.level === 40)).toHaveLength(2);
    expect(clockLines().at(-1)).toMatchObject({ clock_behind_ms: 10 * 60_000 });
  });
});

describe('a running server reads its clock every second (qa-retest NEW-3)', () => {
  it('warns of a step back with no write, and a token that expired meanwhile stays expired', async () => {
    const { token } = await createToken(
      s.store,
      { group: 'app', user: 'brief', expiration: 2 },
      { issuedBy: { group: 'local', user: 'test' } },
    );
    const asBrief = () =>
      fetch(`${s.url}/v1/aggregates`, { headers: { authorization: `Bearer ${token}` } }).then(async (r) => ({
        status: r.status,
        body: (await r.json()) as Record<string, unknown>,
      }));
    expect((await asBrief()).status).toBe(200);
    // The token expires while nothing is asked of the server; then the clock steps back an hour.
    wall = T0 + 5_000;
    await new Promise((r) => setTimeout(r, 1_300));
    wall = T0 - HOUR;
    await new Promise((r) => setTimeout(r, 1_300));
    expect(clockLines()).toEqual([expect.objectContaining({ level: 40, clock_behind_ms: HOUR + 5_000 })]);
    expect(await asBrief()).toMatchObject({ status: 401, body: { code: 'EDBX_ERR_TOKEN_EXPIRED' } });
  });
});
