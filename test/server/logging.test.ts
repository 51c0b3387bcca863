/**
 * What the server log tells an operator (QA qa2-ops item 7): every server error (5xx) at error level
 * with its code, refused authentication (401) at warn level with the token's id only, and repeats of
 * one failure collapsed (a full disk refusing every write must not write a line per request). Never a
 * token or a payload value.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { err } from '../../src/core/errors.js';
import { RepeatFilter } from '../../src/core/repeats.js';
import { MemoryEngine } from '../../src/storage/memory/memory-engine.js';
import { createToken, revokeToken } from '../../src/store/tokens.js';
import { freePort, project } from '../helpers/cli.js';
import { post, testServer } from '../helpers/http.js';

const secret = 'payload-secret-4711';
const event = { event_type: 'admitted', payload: { ward: secret } };

describe('server log (qa2-ops #7)', () => {
  it('logs refused authentication at warn level with the token id, never the token', async () => {
    const s = await testServer({ logs: true });
    try {
      const jane = { issuedBy: { group: 'admin', user: 'jane' } };
      const revoked = await createToken(s.store, { group: 'doctors', user: 'ann' }, jane);
      await revokeToken(s.store, revoked.id, jane);
      const unknown = `edbx_${'A'.repeat(43)}`;
      const from = s.logs.length;
      for (const token of [revoked.token, unknown, undefined]) {
        const res = await fetch(`${s.url}/v1/aggregates`, {
          headers: token ? { authorization: `Bearer ${token}` } : {},
        });
        expect(res.status).toBe(401);
      }
      const lines = s.logs.slice(from).filter((l) => l.msg === 'authentication refused');
      expect(lines.map((l) => [l.level, l.code, l.token_id])).toEqual([
        [40, 'EDBX_ERR_TOKEN_REVOKED', revoked.id],
        [40, 'EDBX_ERR_TOKEN_UNKNOWN', unknown.slice(0, 11)],
        [40, 'EDBX_ERR_TOKEN_MISSING', undefined],
      ]);
      expect(lines[0]).toMatchObject({ method: 'GET', route: '/v1/aggregates' });
      const text = JSON.stringify(s.logs);
      expect(text).not.toContain(revoked.token);
      expect(text).not.toContain(unknown);
    } finally {
      await s.close();
    }
  });

  it('logs server errors at error level with their code, collapsing repeats, without payloads', async () => {
    const engine = new MemoryEngine();
    const s = await testServer({ engine, logs: true });
    try {
      engine.faultNextWrite(err('EDBX_ERR_STORE_IO', { reason: 'No space left on device' }));
      for (let i = 0; i < 6; i++) {
        const r = await post(s, `/v1/aggregates/patient/p-${i}/events`, event);
        expect(r.status).toBe(500);
      }
      const errors = s.logs.filter((l) => l.level === 50 && l.code === 'EDBX_ERR_STORE_IO');
      // The store's failure once, the failed write, then the first refusal; the other five are left out.
      expect(errors.map((l) => String(l.msg))).toEqual([
        expect.stringContaining('every write is refused'),
        expect.stringContaining('No space left on device'),
        expect.stringContaining('an earlier write failed'),
      ]);
      expect(errors[1]).toMatchObject({
        status: 500,
        method: 'POST',
        route: '/v1/aggregates/:aggregate_type/:aggregate_id/events',
      });
      expect(JSON.stringify(s.logs)).not.toContain(secret);
    } finally {
      await s.close();
    }
  });
});

/** A token of the right shape that this store never issued (its id is its first 11 characters). */
const wrongToken = `edbx_${'W'.repeat(43)}`;
const refused = (url: string) =>
  fetch(`${url}/v1/aggregates`, { headers: { authorization: `Bearer ${wrongToken}` } }).then((r) => r.status);
const refusals = (logs: ReadonlyArray<Record<string, unknown>>) =>
  logs.filter((l) => l.msg === 'authentication refused');
/** Every occurrence the lines stand for: each line itself and the `repeated` ones left out before it. */
const occurrences = (lines: ReadonlyArray<Record<string, unknown>>) =>
  lines.reduce((n, l) => n + 1 + ((l.repeated as number | undefined) ?? 0), 0);
const waitFor = async (what: string, done: () => boolean, ms = 5_000) => {
  for (const until = Date.now() + ms; !done(); await new Promise((r) => setTimeout(r, 20)))
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
};

describe('repeated error lines left out are logged, never lost', () => {
  it('a flood of refused authentications: the first line at once, the count left out once the interval passed', async () => {
    const s = await testServer({ logs: true, repeatIntervalMs: 300 });
    try {
      for (let i = 0; i < 5; i++) expect(await refused(s.url)).toBe(401);
      // Within the interval: the first of the five only.
      expect(refusals(s.logs)).toEqual([
        expect.objectContaining({
          level: 40,
          code: 'EDBX_ERR_TOKEN_UNKNOWN',
          token_id: wrongToken.slice(0, 11),
        }),
      ]);
      expect(refusals(s.logs)[0]).not.toHaveProperty('repeated');
      // Nothing else happens: no later refusal carries the count, the timer logs it.
      await waitFor('the count left out', () => refusals(s.logs).length === 2);
      const last = refusals(s.logs)[1]!;
      // The last of the four left out, carrying the three before it: five occurrences in all.
      expect(last).toMatchObject({
        level: 40,
        code: 'EDBX_ERR_TOKEN_UNKNOWN',
        token_id: wrongToken.slice(0, 11),
        ip: '127.0.0.1',
        method: 'GET',
        route: '/v1/aggregates',
        repeated: 3,
      });
      expect(occurrences(refusals(s.logs))).toBe(5);
      expect(JSON.stringify(s.logs)).not.toContain(wrongToken);
    } finally {
      await s.close();
    }
  });

  it('a stopping server logs the counts left out of every kind (server errors too)', async () => {
    const engine = new MemoryEngine();
    const s = await testServer({ engine, logs: true });
    let closed = false;
    try {
      for (let i = 0; i < 4; i++) expect(await refused(s.url)).toBe(401);
      engine.faultNextWrite(err('EDBX_ERR_STORE_IO', { reason: 'No space left on device' }));
      for (let i = 0; i < 4; i++)
        expect((await post(s, `/v1/aggregates/patient/p-${i}/events`, event)).status).toBe(500);
      const refusing = () =>
        s.logs.filter((l) => l.level === 50 && String(l.msg).includes('an earlier write failed'));
      // The interval is a minute: before the stop, one line of each kind.
      expect(refusals(s.logs)).toHaveLength(1);
      expect(refusing()).toHaveLength(1);
      await s.close();
      closed = true;
      expect(refusals(s.logs).at(-1)).toMatchObject({ code: 'EDBX_ERR_TOKEN_UNKNOWN', repeated: 2 });
      expect(occurrences(refusals(s.logs))).toBe(4);
      // Four writes refused after the failed one: the first logged, the last at the stop with the one before.
      expect(refusing().at(-1)).toMatchObject({ code: 'EDBX_ERR_STORE_IO', status: 500, repeated: 1 });
      expect(occurrences(refusing())).toBe(3);
    } finally {
      if (!closed) await s.close();
    }
  });

  it("a daemon's log file holds the count of refused authentications left out once it stops", async () => {
    const p = await project();
    try {
      const port = await freePort();
      const started = await p.cli(['start', '--port', String(port)]);
      expect(started.code, started.stderr).toBe(0);
      for (let i = 0; i < 6; i++) expect(await refused(`http://127.0.0.1:${port}`)).toBe(401);
      expect((await p.cli(['stop'])).code).toBe(0);
      const log = await readFile(path.join(p.dataDir, 'eventdbx.log'), 'utf8');
      const lines = refusals(
        log
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as Record<string, unknown>),
      );
      expect(lines).toEqual([
        expect.objectContaining({
          level: 40,
          code: 'EDBX_ERR_TOKEN_UNKNOWN',
          token_id: wrongToken.slice(0, 11),
        }),
        expect.objectContaining({
          level: 40,
          code: 'EDBX_ERR_TOKEN_UNKNOWN',
          token_id: wrongToken.slice(0, 11),
          repeated: 4,
        }),
      ]);
      expect(lines[0]).not.toHaveProperty('repeated');
      expect(log).not.toContain(wrongToken);
    } finally {
      await p.cli(['stop']);
      await p.cleanup();
    }
  }, 60_000);
});

describe('RepeatFilter', () => {
  it('passes the first of a kind, then one per interval with the number left out', () => {
    let now = 0;
    const f = new RepeatFilter(60_000, () => now);
    expect(f.pass('a')).toBe(0);
    expect(f.pass('a')).toBeUndefined();
    expect(f.pass('b')).toBe(0);
    now = 59_999;
    expect(f.pass('a')).toBeUndefined();
    now = 60_000;
    expect(f.pass('a')).toBe(2);
    expect(f.pass('a')).toBeUndefined();
    now = 200_000;
    expect(f.pass('a')).toBe(1);
    expect(f.pass('b')).toBe(0);
  });

  it('hands back what it left out once the interval passed, or all of it, with the last one (qa-dev #6)', () => {
    let now = 0;
    const f = new RepeatFilter<string>(60_000, () => now);
    expect(f.nextDue()).toBeUndefined();
    f.pass('a', 'a1');
    f.pass('b', 'b1');
    expect(f.nextDue()).toBeUndefined(); // nothing left out yet
    now = 10_000;
    f.pass('a', 'a2');
    f.pass('a', 'a3');
    expect(f.nextDue()).toBe(50_000);
    expect(f.due()).toEqual([]);
    now = 60_000;
    expect(f.due()).toEqual([{ key: 'a', left: 2, last: 'a3' }]);
    // Counted as reported then: the next one is left out for another interval.
    expect(f.pass('a', 'a4')).toBeUndefined();
    expect(f.pass('b', 'b2')).toBe(0); // b's interval has passed: reported at once
    expect(f.pass('b', 'b3')).toBeUndefined();
    now = 61_000;
    expect(f.due(true)).toEqual([
      { key: 'a', left: 1, last: 'a4' },
      { key: 'b', left: 1, last: 'b3' },
    ]);
    expect(f.due(true)).toEqual([]);
    expect(f.nextDue()).toBeUndefined();
  });

  it('remembers a bounded number of kinds', () => {
    const f = new RepeatFilter(60_000, () => 0, 2);
    f.pass('a');
    f.pass('b');
    f.pass('c');
    // 'a' was forgotten: it passes again at once.
    expect(f.pass('a')).toBe(0);
    expect(f.pass('c')).toBeUndefined();
  });
});
