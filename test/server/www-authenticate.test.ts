/**
 * A 401 carries `WWW-Authenticate: Bearer` (RFC 6750 §3; qa2-spec #5: it carried no challenge), with
 * `error="invalid_token"` when a token was sent but is no good.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestServer, testServer } from '../helpers/http.js';

describe('401 challenges', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await testServer();
  });
  afterAll(() => s?.close());

  const challenge = async (path: string, authorization?: string, body?: unknown) => {
    const res = await fetch(`${s.url}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: {
        ...(authorization ? { authorization } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const problem = (await res.json()) as { code: string };
    return { status: res.status, code: problem.code, header: res.headers.get('www-authenticate') };
  };

  it('no token: the bare Bearer challenge', async () => {
    for (const path of ['/v1/aggregates', '/v1/aggregates/patient/p-1', '/metrics'])
      expect(await challenge(path)).toEqual({
        status: 401,
        code: 'EDBX_ERR_TOKEN_MISSING',
        header: 'Bearer realm="eventdbx"',
      });
    const write = await challenge('/v1/aggregates/patient/p-1/events', undefined, {
      event_type: 'a',
      payload: {},
    });
    expect(write.header).toBe('Bearer realm="eventdbx"');
  });

  it('a malformed or unknown token: error="invalid_token"', async () => {
    for (const [authorization, code] of [
      ['Bearer nope', 'EDBX_ERR_TOKEN_MALFORMED'],
      [`Basic ${s.token}`, 'EDBX_ERR_TOKEN_MALFORMED'],
      [`Bearer edbx_${'x'.repeat(43)}`, 'EDBX_ERR_TOKEN_UNKNOWN'],
    ])
      expect(await challenge('/v1/aggregates', authorization)).toEqual({
        status: 401,
        code,
        header: 'Bearer realm="eventdbx", error="invalid_token"',
      });
  });

  it('other errors carry no challenge', async () => {
    const r = await challenge('/v1/aggregates/patient/none', `Bearer ${s.token}`);
    expect(r).toEqual({ status: 404, code: 'EDBX_ERR_AGGREGATE_NOT_FOUND', header: null });
  });
});
