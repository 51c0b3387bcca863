/**
 * Token rules of issue 3, on the in-memory engine with an injected clock (no real sleeping):
 * expiry, sliding keep-alive, write limits (exact under concurrency, failed writes free), refresh,
 * revoke, read-only, scopes, the admin group, one distinct coded error per rejection, and secrets
 * that are never stored or listed.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { type ErrorCode, isEventDbxError } from '../src/core/errors.js';
import { type Access, type TokenRecord, hashToken } from '../src/core/tokens.js';
import { MemoryEngine } from '../src/storage/memory/memory-engine.js';
import { RocksDbEngine } from '../src/storage/rocksdb/rocksdb-engine.js';
import { plainCodec, sealJson } from '../src/store/codec.js';
import * as K from '../src/store/keys.js';
import { EventStore } from '../src/store/store.js';
import {
  authenticate,
  createToken,
  listTokens,
  refreshToken,
  revokeToken,
  type GenerateOptions,
} from '../src/store/tokens.js';
import type { AppendRequest } from '../src/store/types.js';
import { tempDirs } from './helpers/temp.js';

const ADMIN_CTX = { issuedBy: { group: 'local', user: 'tester' } };
const T0 = Date.parse('2026-01-01T00:00:00.000Z');

let clock: Date;
let engine: MemoryEngine;
let store: EventStore;

const advance = (seconds: number) => (clock = new Date(clock.getTime() + seconds * 1000));
const bearer = (token: string) => `Bearer ${token}`;

const tempDir = tempDirs('edbx-tokens-');

beforeEach(async () => {
  clock = new Date(T0);
  engine = new MemoryEngine();
  store = await EventStore.open({ engine, now: () => clock });
});

async function issue(o: Partial<GenerateOptions> = {}): Promise<string> {
  const t = await createToken(store, { group: 'doctors', user: 'ann', ...o }, ADMIN_CTX);
  return t.token;
}

const req = (id = 'p-1', payload: unknown = { name: 'Jane' }, extra: Partial<AppendRequest> = {}) => ({
  aggregate_type: 'patient',
  aggregate_id: id,
  event_type: 'patient-updated',
  payload,
  ...extra,
});

/** What the HTTP write route does: authenticate (early, precise error) then append charging the token. */
async function write(token: string, r: AppendRequest = req()) {
  const t = authenticate(store, bearer(token), {
    write: true,
    aggregate: { type: r.aggregate_type, id: r.aggregate_id },
    allowanceChecked: 'by-transaction',
  });
  return store.append(r, { issuedBy: { group: t.group, user: t.user }, tokenHash: t.hash });
}

async function writeMany(token: string, reqs: AppendRequest[]) {
  const t = authenticate(store, bearer(token), { write: true, allowanceChecked: 'by-transaction' });
  return store.appendMany(reqs, { issuedBy: { group: t.group, user: t.user }, tokenHash: t.hash });
}

const read = (token: string, type = 'patient', id = 'p-1') =>
  authenticate(store, bearer(token), { write: false, aggregate: { type, id } });

/** The coded error a call throws (sync or async), or 'ok'. */
async function codeOf(fn: () => unknown): Promise<ErrorCode | 'ok'> {
  try {
    await fn();
    return 'ok';
  } catch (e) {
    if (isEventDbxError(e)) return e.code;
    throw e;
  }
}

const record = (token: string): TokenRecord => store.tokens.get(hashToken(token))!;

/** Every value stored by the engine (both keyspaces), as raw bytes. */
async function allStoredBytes(): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const space of ['main', 'archive'] as const) {
    for await (const [k, v] of engine.range(space)) parts.push(k, v);
  }
  return Buffer.concat(parts);
}

/** Events in user aggregates (the audit log of token actions is not counted). */
async function userEvents(): Promise<number> {
  return (await store.list()).reduce((n, a) => n + a.version, 0);
}

async function eventCount(type = 'patient', id = 'p-1'): Promise<number> {
  const m = await store.meta(type, id);
  return m?.meta.version ?? 0;
}

describe('tokens: expiry', () => {
  it('accepts a token until its expiration, then refuses reads and writes with EDBX_ERR_TOKEN_EXPIRED', async () => {
    const token = await issue({ expiration: 60 });
    await write(token);
    advance(59);
    expect(await codeOf(() => read(token))).toBe('ok');
    expect(await codeOf(() => write(token))).toBe('ok');
    advance(1);
    expect(await codeOf(() => read(token))).toBe('EDBX_ERR_TOKEN_EXPIRED');
    expect(await codeOf(() => write(token))).toBe('EDBX_ERR_TOKEN_EXPIRED');
    expect(await eventCount()).toBe(2);
    expect((await listTokens(store))[0]!.status).toBe('expired');
  });

  it('re-checks expiry inside the write transaction, so a token that expires while queued writes nothing', async () => {
    const token = await issue({ expiration: 10 });
    const t = read(token);
    advance(10);
    const code = await codeOf(() =>
      store.append(req(), { issuedBy: { group: t.group, user: t.user }, tokenHash: t.hash }),
    );
    expect(code).toBe('EDBX_ERR_TOKEN_EXPIRED');
    expect(await eventCount()).toBe(0);
  });

  it('never expires without --expiration', async () => {
    const token = await issue();
    advance(10 * 365 * 24 * 3600);
    expect(await codeOf(() => write(token))).toBe('ok');
    expect((await listTokens(store))[0]!.expires_at).toBeNull();
  });
});

describe('tokens: keep-alive', () => {
  it('slides the expiry: each use (read or write) pushes it out by the original duration', async () => {
    const token = await issue({ expiration: 60, keepAlive: true });
    for (let i = 0; i < 5; i++) {
      advance(50); // 250 s in total: far beyond the original 60 s
      expect(await codeOf(() => (i % 2 === 0 ? read(token) : write(token)))).toBe('ok');
      expect(record(token).expires_at).toBe(new Date(clock.getTime() + 60_000).toISOString());
    }
    advance(60);
    expect(await codeOf(() => read(token))).toBe('EDBX_ERR_TOKEN_EXPIRED');
  });

  it('makes the slide of a write durable with the write itself', async () => {
    const token = await issue({ expiration: 60, keepAlive: true });
    advance(30);
    await write(token);
    const stored = await engine.get('main', Buffer.concat([Buffer.from('K'), Buffer.from(hashToken(token))]));
    const persisted = JSON.parse(stored!.subarray(1).toString('utf8')) as TokenRecord;
    expect(persisted.expires_at).toBe(new Date(T0 + 90_000).toISOString());
  });

  it('does not slide without --keep-alive: uses do not extend the lifetime', async () => {
    const token = await issue({ expiration: 60 });
    advance(50);
    read(token);
    await write(token);
    expect(record(token).expires_at).toBe(new Date(T0 + 60_000).toISOString());
    advance(10);
    expect(await codeOf(() => read(token))).toBe('EDBX_ERR_TOKEN_EXPIRED');
  });

  it('does not revive an expired keep-alive token by using it', async () => {
    const token = await issue({ expiration: 60, keepAlive: true });
    advance(61);
    expect(await codeOf(() => read(token))).toBe('EDBX_ERR_TOKEN_EXPIRED');
    advance(-30); // even if the clock steps back, the refused use did not slide the expiry
    expect(record(token).expires_at).toBe(new Date(T0 + 60_000).toISOString());
  });

  it('refuses --keep-alive without --expiration', async () => {
    expect(await codeOf(() => issue({ keepAlive: true }))).toBe('EDBX_ERR_INVALID_ARGUMENT');
  });
});

describe('tokens: write limit', () => {
  it('admits exactly --limit writes, then EDBX_ERR_TOKEN_EXHAUSTED; reads still work', async () => {
    const token = await issue({ limit: 3 });
    for (let i = 0; i < 3; i++) await write(token);
    expect(record(token).remaining).toBe(0);
    expect(await codeOf(() => write(token))).toBe('EDBX_ERR_TOKEN_EXHAUSTED');
    expect(await eventCount()).toBe(3);
    expect(await codeOf(() => read(token))).toBe('ok');
    expect((await listTokens(store))[0]).toMatchObject({ status: 'exhausted', limit: 3, remaining: 0 });
  });

  it('charges only successful writes: version conflicts, bad payloads and bad names cost nothing', async () => {
    const token = await issue({ limit: 2 });
    const refused = [
      await codeOf(() => write(token, req('p-1', { name: 'x' }, { expected_version: 5 }))),
      await codeOf(() => write(token, req('p-1', { nested: { no: 'objects' } }))),
      await codeOf(() => write(token, req('p-1', 'not an object'))),
      await codeOf(() => write(token, req('p-1', { 'bad\u0001field': 'x' }))),
      await codeOf(() => write(token, { ...req(), event_type: 'Not Valid' })),
    ];
    expect(refused).toEqual([
      'EDBX_ERR_VERSION_CONFLICT',
      expect.stringMatching(/^EDBX_ERR_INVALID_/),
      expect.stringMatching(/^EDBX_ERR_INVALID_/),
      expect.stringMatching(/^EDBX_ERR_INVALID_/),
      'EDBX_ERR_INVALID_EVENT_TYPE',
    ]);
    expect(record(token).remaining).toBe(2);
    await write(token);
    await write(token);
    expect(await codeOf(() => write(token))).toBe('EDBX_ERR_TOKEN_EXHAUSTED');
    expect(await eventCount()).toBe(2);
  });

  it('does not charge an idempotent retry (same event_id, same event)', async () => {
    const token = await issue({ limit: 2 });
    const first = await write(token, req('p-1', { a: '1' }, { event_id: 'evt-1' }));
    const again = await write(token, req('p-1', { a: '1' }, { event_id: 'evt-1' }));
    expect(again).toEqual(first);
    expect(record(token).remaining).toBe(1);
    expect(await codeOf(() => write(token, req('p-1', { a: '2' }, { event_id: 'evt-1' })))).toBe(
      'EDBX_ERR_EVENT_ID_CONFLICT',
    );
    expect(record(token).remaining).toBe(1);
  });

  it('answers the retry of an event that used up the allowance with the original (qa4-sdk #1)', async () => {
    const token = await issue({ limit: 1 });
    const first = await write(token, req('p-1', { a: '1' }, { event_id: 'evt-last' }));
    expect(record(token).remaining).toBe(0);
    // The answer was lost on the way back; the client retries the identical event.
    expect(await write(token, req('p-1', { a: '1' }, { event_id: 'evt-last' }))).toEqual(first);
    // A new event, or another event under that id, is still refused, and nothing is written.
    expect(await codeOf(() => write(token, req('p-1', { a: '2' })))).toBe('EDBX_ERR_TOKEN_EXHAUSTED');
    expect(await codeOf(() => write(token, req('p-1', { a: '2' }, { event_id: 'evt-last' })))).toBe(
      'EDBX_ERR_EVENT_ID_CONFLICT',
    );
    expect(await eventCount()).toBe(1);
    expect(record(token).remaining).toBe(0);
  });

  it('refuses a transaction larger than the allowance as a whole: nothing written, nothing charged', async () => {
    const token = await issue({ limit: 2 });
    const code = await codeOf(() => writeMany(token, [req('p-1'), req('p-2'), req('p-3')]));
    expect(code).toBe('EDBX_ERR_TOKEN_EXHAUSTED');
    expect(await userEvents()).toBe(0);
    expect(record(token).remaining).toBe(2);
    await writeMany(token, [req('p-1'), req('p-2')]);
    expect(record(token).remaining).toBe(0);
    expect(await userEvents()).toBe(2);
  });

  it('admits exactly 100 events under 64 concurrent writers with --limit 100', async () => {
    const token = await issue({ limit: 100 });
    const ok: number[] = [];
    const refusals = new Set<string>();
    await Promise.all(
      Array.from({ length: 64 }, async (_, w) => {
        for (let i = 0; ; i++) {
          const code = await codeOf(() =>
            write(token, req(`p-${w % 8}`, { writer: String(w), n: String(i) })),
          );
          if (code === 'ok') ok.push(w);
          else {
            refusals.add(code);
            return;
          }
        }
      }),
    );
    expect(ok).toHaveLength(100);
    expect([...refusals]).toEqual(['EDBX_ERR_TOKEN_EXHAUSTED']);
    expect(await userEvents()).toBe(100);
    let total = 0;
    for (let a = 0; a < 8; a++) total += await eventCount('patient', `p-${a}`);
    expect(total).toBe(100);
    expect(record(token).remaining).toBe(0);
  });

  it('keeps exact counts when two tokens with limits write concurrently to the same aggregates', async () => {
    const a = await issue({ limit: 30, user: 'a' });
    const b = await issue({ limit: 20, user: 'b' });
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => codeOf(() => write(i % 2 ? a : b, req(`p-${i % 3}`)))),
    );
    expect(results.filter((c) => c === 'ok')).toHaveLength(50);
    expect(await userEvents()).toBe(50);
    const writers = (await store.readLog(1, 100)).map((e) => e.metadata.issued_by.user);
    expect(writers.filter((u) => u === 'a')).toHaveLength(30);
    expect(writers.filter((u) => u === 'b')).toHaveLength(20);
  });
});

describe('tokens: refresh and revoke', () => {
  it('refresh --expiration extends the lifetime from now, in place (same token value)', async () => {
    const token = await issue({ expiration: 60 });
    advance(61);
    expect(await codeOf(() => read(token))).toBe('EDBX_ERR_TOKEN_EXPIRED');
    const r = await refreshToken(store, token, { expiration: 3600 }, ADMIN_CTX);
    expect(r.expires_at).toBe(new Date(clock.getTime() + 3600_000).toISOString());
    expect(r.status).toBe('active');
    expect(await codeOf(() => write(token))).toBe('ok');
    expect(store.tokens.size).toBe(1);
  });

  it('refresh --limit restores the write allowance of an exhausted token; --expiration alone keeps it', async () => {
    const token = await issue({ limit: 1, expiration: 60 });
    await write(token);
    expect(await codeOf(() => write(token))).toBe('EDBX_ERR_TOKEN_EXHAUSTED');
    await refreshToken(store, token, { expiration: 120 }, ADMIN_CTX);
    expect(await codeOf(() => write(token))).toBe('EDBX_ERR_TOKEN_EXHAUSTED');
    const r = await refreshToken(store, token, { limit: 5 }, ADMIN_CTX);
    expect(r).toMatchObject({ limit: 5, remaining: 5, expires_at: new Date(T0 + 120_000).toISOString() });
    expect(await codeOf(() => write(token))).toBe('ok');
    expect(record(token).remaining).toBe(4);
  });

  it('refresh of a keep-alive token slides by the new duration', async () => {
    const token = await issue({ expiration: 60, keepAlive: true });
    await refreshToken(store, token, { expiration: 600 }, ADMIN_CTX);
    advance(500);
    read(token);
    expect(record(token).expires_at).toBe(new Date(clock.getTime() + 600_000).toISOString());
  });

  it('refresh needs --expiration and/or --limit, and finds a token by its listed id', async () => {
    const token = await issue();
    expect(await codeOf(() => refreshToken(store, token, {}, ADMIN_CTX))).toBe('EDBX_ERR_USAGE');
    const id = (await listTokens(store))[0]!.id;
    expect((await refreshToken(store, id, { limit: 7 }, ADMIN_CTX)).remaining).toBe(7);
    expect(await codeOf(() => refreshToken(store, 'edbx_nothere', { limit: 1 }, ADMIN_CTX))).toBe(
      'EDBX_ERR_TOKEN_NOT_FOUND',
    );
  });

  it('revoke takes effect immediately for reads and writes, and a revoked token cannot be refreshed', async () => {
    const token = await issue();
    await write(token);
    const t = read(token);
    await revokeToken(store, token, ADMIN_CTX);
    expect(await codeOf(() => read(token))).toBe('EDBX_ERR_TOKEN_REVOKED');
    expect(await codeOf(() => write(token))).toBe('EDBX_ERR_TOKEN_REVOKED');
    // A write authenticated just before the revoke is refused inside the transaction.
    expect(
      await codeOf(() =>
        store.append(req(), { issuedBy: { group: t.group, user: t.user }, tokenHash: t.hash }),
      ),
    ).toBe('EDBX_ERR_TOKEN_REVOKED');
    expect(await eventCount()).toBe(1);
    expect(await codeOf(() => refreshToken(store, token, { expiration: 60 }, ADMIN_CTX))).toBe(
      'EDBX_ERR_TOKEN_ALREADY_REVOKED',
    );
    expect((await listTokens(store))[0]!.status).toBe('revoked');
  });

  it('revoke by the id shown in `token list`', async () => {
    const token = await issue();
    await revokeToken(store, (await listTokens(store))[0]!.id, ADMIN_CTX);
    expect(await codeOf(() => read(token))).toBe('EDBX_ERR_TOKEN_REVOKED');
  });
});

describe('tokens: read-only, scopes and groups', () => {
  it('a read-only token reads but every write is EDBX_ERR_TOKEN_READ_ONLY and writes nothing', async () => {
    const writer = await issue();
    await write(writer);
    const auditor = await issue({ readOnly: true, user: 'auditor' });
    expect(await codeOf(() => read(auditor))).toBe('ok');
    expect(await codeOf(() => write(auditor))).toBe('EDBX_ERR_TOKEN_READ_ONLY');
    expect(await codeOf(() => writeMany(auditor, [req('p-9')]))).toBe('EDBX_ERR_TOKEN_READ_ONLY');
    // Even bypassing the early check, the transaction refuses it.
    const t = record(auditor);
    expect(
      await codeOf(() =>
        store.append(req(), { issuedBy: { group: t.group, user: t.user }, tokenHash: t.hash }),
      ),
    ).toBe('EDBX_ERR_TOKEN_READ_ONLY');
    expect(await userEvents()).toBe(1);
  });

  it('a `type` scope covers every aggregate of that type and nothing else, for reads and writes', async () => {
    const token = await issue({ scopes: ['patient'] });
    expect(await codeOf(() => read(token, 'patient', 'p-1'))).toBe('ok');
    expect(await codeOf(() => read(token, 'patient', 'p-2'))).toBe('ok');
    expect(await codeOf(() => read(token, 'order', 'o-1'))).toBe('EDBX_ERR_TOKEN_OUT_OF_SCOPE');
    expect(await codeOf(() => read(token, 'patients', 'p-1'))).toBe('EDBX_ERR_TOKEN_OUT_OF_SCOPE');
    expect(await codeOf(() => write(token, req('p-2')))).toBe('ok');
    expect(await codeOf(() => write(token, { ...req(), aggregate_type: 'order' }))).toBe(
      'EDBX_ERR_TOKEN_OUT_OF_SCOPE',
    );
    expect(await userEvents()).toBe(1);
  });

  it('a `type/id` scope covers exactly that aggregate; several scopes add up', async () => {
    const token = await issue({ scopes: ['patient/p-1', 'order/o-1'] });
    expect(await codeOf(() => read(token, 'patient', 'p-1'))).toBe('ok');
    expect(await codeOf(() => read(token, 'order', 'o-1'))).toBe('ok');
    expect(await codeOf(() => read(token, 'patient', 'p-2'))).toBe('EDBX_ERR_TOKEN_OUT_OF_SCOPE');
    expect(await codeOf(() => read(token, 'patient', 'p-1x'))).toBe('EDBX_ERR_TOKEN_OUT_OF_SCOPE');
    expect(await codeOf(() => write(token, req('p-1')))).toBe('ok');
    expect(await codeOf(() => write(token, req('p-2')))).toBe('EDBX_ERR_TOKEN_OUT_OF_SCOPE');
  });

  it('a scoped token cannot slip an out-of-scope aggregate into a transaction: nothing is written', async () => {
    const token = await issue({ scopes: ['patient/p-1'], limit: 10 });
    const code = await codeOf(() => writeMany(token, [req('p-1'), req('p-2')]));
    expect(code).toBe('EDBX_ERR_TOKEN_OUT_OF_SCOPE');
    expect(await userEvents()).toBe(0);
    expect(record(token).remaining).toBe(10);
  });

  it('refuses malformed scopes when the token is generated', async () => {
    for (const bad of ['Patient', 'patient/', '/p-1', 'patient/p-1/x', ''])
      expect(await codeOf(() => issue({ scopes: [bad] }))).toBe('EDBX_ERR_INVALID_ARGUMENT');
  });

  it('only group admin passes admin checks (token, schema and plugin management)', async () => {
    const admin = await issue({ group: 'admin', user: 'root' });
    const doctor = await issue({ group: 'doctors' });
    const access: Access = { write: true, admin: true };
    expect(await codeOf(() => authenticate(store, bearer(admin), access))).toBe('ok');
    expect(await codeOf(() => authenticate(store, bearer(doctor), access))).toBe(
      'EDBX_ERR_GROUP_NOT_ALLOWED',
    );
    expect(await codeOf(() => authenticate(store, bearer(doctor), { write: false, admin: true }))).toBe(
      'EDBX_ERR_GROUP_NOT_ALLOWED',
    );
    // A look-alike group is not admin.
    const almost = await issue({ group: 'admins' });
    expect(await codeOf(() => authenticate(store, bearer(almost), access))).toBe(
      'EDBX_ERR_GROUP_NOT_ALLOWED',
    );
  });

  it('an admin token with scopes or a write limit may not administer (it could issue itself an unrestricted token)', async () => {
    const scoped = await issue({ group: 'admin', user: 'sc', scopes: ['patient/p-1'] });
    const limited = await issue({ group: 'admin', user: 'lim', limit: 1 });
    for (const t of [scoped, limited]) {
      for (const write of [true, false])
        expect(await codeOf(() => authenticate(store, bearer(t), { write, admin: true }))).toBe(
          'EDBX_ERR_ADMIN_TOKEN_RESTRICTED',
        );
    }
    // They still write and read what they cover.
    expect((await write(limited)).metadata.issued_by.user).toBe('lim');
  });

  it('refuses tokens for group local, the group of CLI writes on the host without a token (QA-comp #6)', async () => {
    for (const group of ['local', 'Local', 'LOCAL']) {
      const message = await messageOf(() => issue({ group, user: 'root' }));
      expect(message).toBe(
        `group ${JSON.stringify(group)} is reserved for writes made on the host without a token (recorded as local/<OS user>): issue the token for another group [EDBX_ERR_GROUP_RESERVED]`,
      );
    }
    // Nothing issued, nothing audited; a look-alike group is another group.
    expect(await listTokens(store)).toEqual([]);
    expect(await auditCount()).toBe(0);
    expect(await codeOf(() => issue({ group: 'locals' }))).toBe('ok');
  });

  it('a local token stored before the reservation keeps working (QA-comp #6)', async () => {
    const dir = await tempDir();
    let disk = await EventStore.open({ engine: new RocksDbEngine(dir) });
    const { token } = await createToken(disk, { group: 'doctors', user: 'root' }, ADMIN_CTX);
    const old: TokenRecord = { ...disk.tokens.get(hashToken(token))!, group: 'local' };
    await disk.engine.write(
      [{ type: 'put', space: 'main', key: K.tokenKey(old.hash), value: sealJson(plainCodec, old) }],
      { sync: true },
    );
    await disk.close();
    disk = await EventStore.open({ engine: new RocksDbEngine(dir) });
    try {
      const t = authenticate(disk, bearer(token), { write: true, allowanceChecked: 'by-transaction' });
      const e = await disk.append(req(), { issuedBy: { group: t.group, user: t.user }, tokenHash: t.hash });
      // Its token id tells its writes from those made on the host, which carry none (QA audit #2).
      expect(e.metadata.issued_by).toEqual({ group: 'local', user: 'root', token: t.id });
    } finally {
      await disk.close();
    }
  });

  it('records the token owner, not "the app", as issued_by of every event, with the token id', async () => {
    const token = await issue({ group: 'doctors', user: 'dr-house' });
    const e = await write(token);
    expect(e.metadata.issued_by).toEqual({ group: 'doctors', user: 'dr-house', token: token.slice(0, 11) });
  });

  it('records the token charged, whatever the write context claims (QA audit #2)', async () => {
    const token = await issue({ group: 'doctors', user: 'dr-house' });
    const t = read(token);
    const [e] = await store.appendMany([req()], {
      issuedBy: { group: 'admin', user: 'jane', token: 'edbx_forged' },
      tokenHash: t.hash,
    });
    expect(e!.metadata.issued_by).toEqual({ group: 'doctors', user: 'dr-house', token: t.id });
  });
});

describe('tokens: every rejection has its own code', () => {
  it('missing, malformed, unknown, expired, revoked, exhausted, read-only, out of scope, group not allowed', async () => {
    const expired = await issue({ expiration: 1 });
    const revoked = await issue();
    await revokeToken(store, revoked, ADMIN_CTX);
    const exhausted = await issue({ limit: 1 });
    await write(exhausted);
    const readOnly = await issue({ readOnly: true });
    const scoped = await issue({ scopes: ['order'] });
    const doctor = await issue();
    advance(2);
    const w: Access = { write: true, aggregate: { type: 'patient', id: 'p-1' } };
    const codes = [
      await codeOf(() => authenticate(store, undefined, w)),
      await codeOf(() => authenticate(store, 'Bearer not-a-token', w)),
      await codeOf(() => authenticate(store, 'Basic ' + Buffer.from('a:b').toString('base64'), w)),
      await codeOf(() => authenticate(store, bearer('edbx_' + 'A'.repeat(43)), w)),
      await codeOf(() => authenticate(store, bearer(expired), w)),
      await codeOf(() => authenticate(store, bearer(revoked), w)),
      await codeOf(() => authenticate(store, bearer(exhausted), w)),
      await codeOf(() => authenticate(store, bearer(readOnly), w)),
      await codeOf(() => authenticate(store, bearer(scoped), w)),
      await codeOf(() => authenticate(store, bearer(doctor), { write: false, admin: true })),
    ];
    expect(codes).toEqual([
      'EDBX_ERR_TOKEN_MISSING',
      'EDBX_ERR_TOKEN_MALFORMED',
      'EDBX_ERR_TOKEN_MALFORMED',
      'EDBX_ERR_TOKEN_UNKNOWN',
      'EDBX_ERR_TOKEN_EXPIRED',
      'EDBX_ERR_TOKEN_REVOKED',
      'EDBX_ERR_TOKEN_EXHAUSTED',
      'EDBX_ERR_TOKEN_READ_ONLY',
      'EDBX_ERR_TOKEN_OUT_OF_SCOPE',
      'EDBX_ERR_GROUP_NOT_ALLOWED',
    ]);
    expect(new Set(codes).size).toBe(9);
  });

  it('accepts any case of the Bearer scheme but nothing else around the token', async () => {
    const token = await issue();
    const a: Access = { write: false };
    expect(await codeOf(() => authenticate(store, `bearer ${token}`, a))).toBe('ok');
    expect(await codeOf(() => authenticate(store, `Bearer ${token} extra`, a))).toBe(
      'EDBX_ERR_TOKEN_MALFORMED',
    );
    expect(await codeOf(() => authenticate(store, `Bearer ${token}x`, a))).toBe('EDBX_ERR_TOKEN_MALFORMED');
    expect(await codeOf(() => authenticate(store, token, a))).toBe('EDBX_ERR_TOKEN_MALFORMED');
    expect(await codeOf(() => authenticate(store, '   ', a))).toBe('EDBX_ERR_TOKEN_MISSING');
  });
});

describe('tokens: secrets', () => {
  it('are long random secrets with the edbx_ prefix, shown once', async () => {
    const tokens = await Promise.all(Array.from({ length: 20 }, () => issue()));
    for (const t of tokens) expect(t).toMatch(/^edbx_[A-Za-z0-9_-]{43}$/);
    expect(new Set(tokens).size).toBe(20);
  });

  it('never stores a token value: only its hash (grep every stored key and value)', async () => {
    const token = await issue({ expiration: 60, keepAlive: true, limit: 5, scopes: ['patient'] });
    await write(token);
    await refreshToken(store, token, { limit: 9 }, ADMIN_CTX);
    await revokeToken(store, token, ADMIN_CTX);
    const bytes = await allStoredBytes();
    expect(bytes.includes(Buffer.from(token))).toBe(false);
    // The secret part after the listed id does not appear either (not even as a substring).
    expect(bytes.includes(Buffer.from(token.slice(11, 30)))).toBe(false);
    // Sanity: the grep does see stored data (the token's hash is stored, as a key).
    expect(bytes.includes(Buffer.from(hashToken(token)))).toBe(true);
  });

  it('`token list` shows id, group, user, status, expiry and remaining writes, never the token or its hash', async () => {
    const token = await issue({ expiration: 60, limit: 5 });
    const listed = await listTokens(store);
    expect(listed).toEqual([
      expect.objectContaining({
        id: token.slice(0, 11),
        group: 'doctors',
        user: 'ann',
        status: 'active',
        expires_at: new Date(T0 + 60_000).toISOString(),
        remaining: 5,
      }),
    ]);
    const text = JSON.stringify(listed);
    expect(text).not.toContain(token);
    expect(text).not.toContain(hashToken(token));
    expect(text).not.toContain('hash');
  });

  it('audit entries of token actions name the token by id only', async () => {
    const token = await issue({ limit: 1 });
    await refreshToken(store, token, { limit: 2 }, ADMIN_CTX);
    await revokeToken(store, token, ADMIN_CTX);
    const log = await store.auditLog();
    expect(log.map((e) => e.event_type)).toEqual(['token-generated', 'token-refreshed', 'token-revoked']);
    for (const e of log) {
      expect(e.payload.token).toBe(token.slice(0, 11));
      expect(e.metadata.issued_by).toEqual(ADMIN_CTX.issuedBy);
    }
    const text = JSON.stringify(log);
    expect(text).not.toContain(token);
    expect(text).not.toContain(hashToken(token));
  });
});

/** The message of the coded error a call throws. */
async function messageOf(fn: () => unknown): Promise<string> {
  try {
    await fn();
  } catch (e) {
    if (isEventDbxError(e)) return `${e.message} [${e.code}]`;
    throw e;
  }
  return 'ok';
}

const auditCount = async () => (await store.auditLog()).length;

describe('tokens: refusals that say what is wrong with the target token', () => {
  it('revoking a revoked token is refused and audited once', async () => {
    const token = await issue();
    await revokeToken(store, token, ADMIN_CTX);
    const audited = await auditCount();
    advance(10);
    expect(await messageOf(() => revokeToken(store, token, ADMIN_CTX))).toMatch(
      new RegExp(
        `already revoked \\(at ${new Date(T0).toISOString()}\\).*\\[EDBX_ERR_TOKEN_ALREADY_REVOKED\\]`,
      ),
    );
    expect(await auditCount()).toBe(audited);
    expect(record(token).revoked_at).toBe(new Date(T0).toISOString());
  });

  it('refreshing an expired token with only a limit is refused: it needs a new expiration', async () => {
    const token = await issue({ expiration: 60 });
    advance(61);
    const audited = await auditCount();
    expect(await messageOf(() => refreshToken(store, token, { limit: 5 }, ADMIN_CTX))).toMatch(
      /expired at .*must give a new expiration.*\[EDBX_ERR_TOKEN_EXPIRATION_REQUIRED\]/,
    );
    expect(await auditCount()).toBe(audited);
    expect(record(token).remaining).toBeNull();
    const r = await refreshToken(store, token, { limit: 5, expiration: 60 }, ADMIN_CTX);
    expect(r).toMatchObject({ status: 'active', remaining: 5 });
  });

  it('one range message for every bad expiration or limit, from the CLI (strings) or HTTP (numbers)', async () => {
    const token = await issue();
    const range = 'use a whole number of seconds from 1 to 3153600000';
    for (const bad of ['-5', '0', '99999999999999999', '3153600001', 'abc', 1.5, 0]) {
      expect(await messageOf(() => issue({ expiration: bad }))).toContain(range);
      expect(await messageOf(() => refreshToken(store, token, { expiration: bad }, ADMIN_CTX))).toContain(
        range,
      );
    }
    for (const bad of ['-5', '0', '99999999999999999']) {
      expect(await messageOf(() => issue({ limit: bad }))).toContain(
        `invalid limit "${bad}": use a whole number of writes from 1 to ${Number.MAX_SAFE_INTEGER}`,
      );
    }
    expect(
      (await createToken(store, { group: 'g', user: 'u', expiration: '3153600000' }, ADMIN_CTX)).status,
    ).toBe('active');
  });

  it('a transaction larger than the writes left says how many are left and how many it needs', async () => {
    const token = await issue({ limit: 3 });
    await write(token);
    await write(token);
    const message = await messageOf(() => writeMany(token, [req('p-1'), req('p-2')]));
    expect(message).toMatch(/has 1 write left and this request needs 2: nothing was written/);
    expect(message).not.toMatch(/--|eventdbx /); // worded for HTTP and the CLI alike
    expect(record(token).remaining).toBe(1);
  });
});

describe('token ids', () => {
  it('a new token never takes the id of a token the store holds: it is drawn again', async () => {
    const draws = [
      'edbx_SAMEidAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      'edbx_SAMEidBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB',
      'edbx_OTHERiCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC',
    ];
    const generate = () => {
      const token = draws.shift()!;
      return { token, id: token.slice(0, 11), hash: hashToken(token) };
    };
    const first = await createToken(store, { group: 'doctors', user: 'ann' }, ADMIN_CTX, generate);
    const second = await createToken(store, { group: 'doctors', user: 'bob' }, ADMIN_CTX, generate);
    expect(first.id).toBe('edbx_SAMEid');
    expect(second.id).toBe('edbx_OTHERi');
    expect(second.token).toBe('edbx_OTHERiCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC');
    expect(draws).toEqual([]);
  });
});
