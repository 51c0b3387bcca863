/**
 * Regression of the qa-full round's finding 3 (first half): a read-only token's write was refused only
 * once its whole body had arrived, so 900 such clients each withholding the last byte of a 1 MB body
 * took the server to ~1 GB. A token that cannot make a write (read-only, outside its scopes, not an
 * admin) is now refused before the body is read, as a missing token is, and so is a path no route
 * serves; a token revoked while its body arrives is still refused once the body is in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tokenFeature } from '../../src/server/routes/tokens.js';
import { createToken } from '../../src/store/tokens.js';
import { type TestServer, appendBodyOf, openRequests, post, testServer } from '../helpers/http.js';

const appendHead = (token: string, length: number, where: string) =>
  `POST /v1/aggregates/${where}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n` +
  `Content-Type: application/json\r\nContent-Length: ${length}`;

const body = appendBodyOf;

const open = openRequests();

describe('a token that cannot make a write is refused before its body is read (qa-full #3)', () => {
  let s: TestServer;
  const tokens: Record<string, string> = {};
  beforeAll(async () => {
    s = await testServer({ extraRoutes: [(app, ctx) => tokenFeature.routes!(app, ctx, undefined as never)] });
    const by = { issuedBy: { group: 'local', user: 'test' } };
    tokens.readOnly = (
      await createToken(s.store, { group: 'monitor', user: 'scraper', readOnly: true }, by)
    ).token;
    tokens.scoped = (
      await createToken(s.store, { group: 'doctors', user: 'dr', scopes: ['patient/p-1'] }, by)
    ).token;
    tokens.writer = (await createToken(s.store, { group: 'doctors', user: 'jane' }, by)).token;
  });
  afterAll(() => s?.close());

  // Each request announces a body of 900 kB and sends none of it: only an answer before the body counts.
  it.each([
    ['a read-only token', 'readOnly', '/v1/aggregates/patient/p-1/events', 403, 'EDBX_ERR_TOKEN_READ_ONLY'],
    ['a read-only token, a transaction', 'readOnly', '/v1/transactions', 403, 'EDBX_ERR_TOKEN_READ_ONLY'],
    [
      'a token scoped elsewhere',
      'scoped',
      '/v1/aggregates/patient/p-2/events',
      403,
      'EDBX_ERR_TOKEN_OUT_OF_SCOPE',
    ],
    ['a token outside group admin', 'writer', '/v1/tokens', 403, 'EDBX_ERR_GROUP_NOT_ALLOWED'],
    ['no token', 'none', '/v1/aggregates/patient/p-1/events', 401, 'EDBX_ERR_TOKEN_MISSING'],
    ['an unknown path', 'writer', '/v1/nothing-here', 404, 'EDBX_ERR_ROUTE_NOT_FOUND'],
  ])('%s: answered at once, with nothing of the body sent', async (_name, who, target, status, code) => {
    const auth = who === 'none' ? '' : `Authorization: Bearer ${tokens[who]!}\r\n`;
    const head = `POST ${target} HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 900000`;
    const r = await open(s.port, head).answer();
    expect(r?.status).toBe(status);
    expect(r?.body.code).toBe(code);
  });

  it('the same token may still read, and a token that may write still writes', async () => {
    const read = await fetch(`${s.url}/v1/aggregates`, {
      headers: { authorization: `Bearer ${tokens.readOnly}` },
    });
    expect(read.status).toBe(200);
    const r = await post(s, '/v1/aggregates/patient/p-1/events', JSON.parse(body(100)), {
      authorization: `Bearer ${tokens.scoped}`,
    });
    expect(r.status).toBe(201);
  });

  it('a token revoked while its body arrives is refused once the body is in', async () => {
    const t = (
      await createToken(
        s.store,
        { group: 'doctors', user: 'late' },
        { issuedBy: { group: 'local', user: 'test' } },
      )
    ).token;
    const payload = body(2_000);
    const req = open(s.port, appendHead(t, payload.length, 'patient/p-3'));
    req.socket.write(payload.slice(0, 1_000));
    expect(await req.answer(300)).toBeUndefined();
    const revoked = await fetch(`${s.url}/v1/tokens/${t.slice(0, 11)}/revoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.token}` },
    });
    expect(revoked.status).toBe(200);
    req.socket.write(payload.slice(1_000));
    const r = await req.answer();
    expect(r?.status).toBe(401);
    expect(r?.body.code).toBe('EDBX_ERR_TOKEN_REVOKED');
    expect(await s.store.meta('patient', 'p-3')).toBeNull();
  });
});
