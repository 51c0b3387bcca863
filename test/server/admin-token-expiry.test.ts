/**
 * Pen-test finding 7: an admin token with an expiry could refresh itself for 100 years or issue admin
 * tokens that never expire, outliving the time it was given. Over HTTP on a real data dir, a token an
 * expiring admin issues or refreshes must expire no later than that admin, and not slide
 * (`keep_alive`); an admin token without an expiry, and the CLI on the host, are not bound.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tokenFeature } from '../../src/server/routes/tokens.js';
import { RocksDbEngine } from '../../src/storage/rocksdb/rocksdb-engine.js';
import { createToken } from '../../src/store/tokens.js';
import { type TestServer, testServer } from '../helpers/http.js';
import { tempDirs } from '../helpers/temp.js';

const HOST = { issuedBy: { group: 'local', user: 'test' } };
const T0 = Date.parse('2026-03-01T10:00:00.000Z');
/** testServer's admin token expires 3600 s after it is issued. */
const ADMIN_EXPIRES = new Date(T0 + 3600_000).toISOString();

let dir: string;
let s: TestServer;
let clock: Date;

const tempDir = tempDirs('edbx-admin-expiry-');
beforeEach(async () => {
  dir = await tempDir();
  clock = new Date(T0);
  s = await testServer({
    engine: new RocksDbEngine(dir),
    storeOptions: { now: () => clock },
    // The token routes need no keys (the feature ignores the secure store it is given).
    extraRoutes: [(app, ctx) => tokenFeature.routes!(app, ctx, undefined as never)],
  });
});
afterEach(async () => {
  await s?.close();
});

async function call(token: string, url: string, body: unknown) {
  const res = await fetch(`${s.url}${url}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

const issue = (admin: string, body: Record<string, unknown>) =>
  call(admin, '/v1/tokens', { group: 'admin', user: 'contractor-2', ...body });
const refresh = (admin: string, id: string, body: Record<string, unknown>) =>
  call(admin, `/v1/tokens/${id}/refresh`, body);
const auditLength = async () => (await s.store.auditLog()).length;

describe('pen-test #7: a time-limited admin token cannot outlive its expiry', () => {
  it('issues no token without an expiry, with a later one, or sliding: 403, nothing stored or audited', async () => {
    const before = { tokens: s.store.tokens.size, audit: await auditLength() };
    const never = await issue(s.token, {});
    expect(never.status).toBe(403);
    expect(never.body.code).toBe('EDBX_ERR_TOKEN_OUTLIVES_ADMIN');
    expect(never.body.detail).toBe(
      `token ${s.token.slice(0, 11)} is an admin token that expires at ${ADMIN_EXPIRES}, and the token it ` +
        'issues would never expire: a token issued or refreshed with it must expire by then, without ' +
        '--keep-alive (an expiration of at most 3600 seconds); or use an admin token without an expiry, or ' +
        "`eventdbx token generate` on the server's host",
    );
    const later = await issue(s.token, { expiration: 3601 });
    expect([later.status, later.body.code]).toEqual([403, 'EDBX_ERR_TOKEN_OUTLIVES_ADMIN']);
    expect(later.body.detail).toContain('would expire at 2026-03-01T11:00:01.000Z');
    const sliding = await issue(s.token, { expiration: 60, keep_alive: true });
    expect([sliding.status, sliding.body.code]).toEqual([403, 'EDBX_ERR_TOKEN_OUTLIVES_ADMIN']);
    expect(sliding.body.detail).toContain('would slide with use (--keep-alive)');
    expect({ tokens: s.store.tokens.size, audit: await auditLength() }).toEqual(before);

    // Up to its own expiry is fine, and the bound follows the clock.
    const within = await issue(s.token, { expiration: 3600 });
    expect([within.status, within.body.expires_at]).toEqual([201, ADMIN_EXPIRES]);
    clock = new Date(T0 + 3000_000);
    expect((await issue(s.token, { expiration: 601 })).body.detail).toContain('at most 600 seconds');
  });

  it('cannot refresh itself past its expiry, nor lengthen another token beyond it', async () => {
    const self = s.token.slice(0, 11);
    const century = await refresh(s.token, self, { expiration: 100 * 365 * 24 * 3600 });
    expect([century.status, century.body.code]).toEqual([403, 'EDBX_ERR_TOKEN_OUTLIVES_ADMIN']);
    expect(century.body.detail).toContain('and the token it refreshes would expire at 2126-');
    // Shortening itself is fine.
    const shorter = await refresh(s.token, self, { expiration: 1800 });
    expect([shorter.status, shorter.body.expires_at]).toEqual([200, new Date(T0 + 1800_000).toISOString()]);

    // A token issued on the host that never expires: a new limit alone would leave it outliving the
    // admin; with an expiration within the admin's, the refresh is made.
    const lasting = await createToken(s.store, { group: 'doctors', user: 'ann' }, HOST);
    const limitOnly = await refresh(s.token, lasting.id, { limit: 5 });
    expect([limitOnly.status, limitOnly.body.code]).toEqual([403, 'EDBX_ERR_TOKEN_OUTLIVES_ADMIN']);
    expect(limitOnly.body.detail).toContain(`the token it refreshes (${lasting.id}) would never expire`);
    const bounded = await refresh(s.token, lasting.id, { limit: 5, expiration: 1800 });
    expect([bounded.status, bounded.body.remaining]).toEqual([200, 5]);
  });

  it('binds a keep-alive admin by its current expiry, and never binds an admin token without one', async () => {
    const sliding = await createToken(
      s.store,
      { group: 'admin', user: 'night-shift', expiration: 600, keepAlive: true },
      HOST,
    );
    clock = new Date(T0 + 500_000);
    // This request slides it to T0 + 1100 s: 600 seconds from now is within, 601 is not.
    expect((await issue(sliding.token, { expiration: 600 })).status).toBe(201);
    const over = await issue(sliding.token, { expiration: 601 });
    expect([over.status, over.body.code]).toEqual([403, 'EDBX_ERR_TOKEN_OUTLIVES_ADMIN']);
    // It may not refresh itself either: it would keep sliding.
    const self = await refresh(sliding.token, sliding.id, { expiration: 60 });
    expect(self.body.detail).toContain('would slide with use (--keep-alive)');

    const root = await createToken(s.store, { group: 'admin', user: 'root' }, HOST);
    expect((await issue(root.token, {})).status).toBe(201);
    expect((await issue(root.token, { expiration: 60, keep_alive: true })).status).toBe(201);
    expect((await refresh(root.token, s.token.slice(0, 11), { expiration: 7200 })).status).toBe(200);
  });
});
