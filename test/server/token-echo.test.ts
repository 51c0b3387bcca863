/**
 * Regression of the QA audit's finding 11 (second point): a problem+json `detail` and `instance`
 * echoed a token the client put by mistake in a query or path (`?token=edbx_…`, `?version=edbx_…`).
 * Answers and log lines now show a token as its id only (`edbx_Q2x9fA…`), as everywhere else.
 */
import { describe, expect, it } from 'vitest';
import { redactTokens, tokenIdOf } from '../../src/core/tokens.js';
import { post, rawRequest, testServer } from '../helpers/http.js';

describe('a token sent by mistake in a query or path (QA audit #11)', () => {
  it('comes back in problem+json detail and instance as its id only', async () => {
    const s = await testServer({ logs: true });
    try {
      const t = s.token;
      const secret = t.slice(tokenIdOf(t).length);
      const added = await post(s, '/v1/aggregates/patient/p-1/events', { event_type: 'added', payload: {} });
      expect(added.status).toBe(201);
      const cases: Array<[string, number, string]> = [
        [`/v1/aggregates?token=${t}`, 400, 'EDBX_ERR_INVALID_ARGUMENT'],
        [`/v1/aggregates/patient/p-1/events/${t}`, 400, 'EDBX_ERR_INVALID_VERSION'],
        [`/v1/aggregates/patient/p-1/events/1/proof?tree_size=${t}`, 400, 'EDBX_ERR_INVALID_PROOF_RANGE'],
        [`/v1/aggregates/patient/${t}`, 404, 'EDBX_ERR_AGGREGATE_NOT_FOUND'],
        [`/v1/no-such-route/${t}`, 404, 'EDBX_ERR_ROUTE_NOT_FOUND'],
      ];
      for (const [url, status, code] of cases) {
        const res = await fetch(`${s.url}${url}`, { headers: { authorization: `Bearer ${t}` } });
        const text = await res.text();
        const body = JSON.parse(text) as { code: string; detail: string; instance: string };
        expect({ url, status: res.status, code: body.code }).toEqual({ url, status, code });
        expect(text, url).not.toContain(secret);
        expect(`${body.detail} ${body.instance}`, url).toContain(`${tokenIdOf(t)}…`);
      }
      expect(JSON.stringify(s.logs)).not.toContain(secret);
    } finally {
      await s.close();
    }
  });

  it('never reaches a log line, whatever logs it; a malformed request is not logged as its raw bytes', async () => {
    const s = await testServer({ logs: true });
    try {
      const t = s.token;
      const secret = t.slice(tokenIdOf(t).length);
      // Node's parse error carries the raw request (Authorization header, query), logged at debug level.
      const r = await rawRequest(
        s.port,
        `GET /v1/aggregates?token=${t} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t}\r\nTransfer-Encoding: chunked`,
      );
      expect(r.body.code).toBe('EDBX_ERR_MALFORMED_REQUEST');
      const parse = s.logs.find((l) => l.msg === 'client error');
      expect(parse).toMatchObject({ level: 20, code: 'HPE_INVALID_CONTENT_LENGTH' });
      expect(JSON.stringify(parse)).not.toContain('rawPacket');
      // Any other line: an error quoting a value, a plugin's line naming an aggregate.
      s.app.log.error({ value: `?token=${t}`, nested: { id: t } }, `could not read ${t}`);
      const last = s.logs.at(-1)!;
      expect(last).toMatchObject({
        msg: `could not read ${tokenIdOf(t)}…`,
        value: `?token=${tokenIdOf(t)}…`,
        nested: { id: `${tokenIdOf(t)}…` },
      });
      expect(JSON.stringify(s.logs)).not.toContain(secret);
    } finally {
      await s.close();
    }
  });
});

describe('redactTokens', () => {
  const t = 'edbx_Q2x9fAbcdefghijklmnopqrstuvwxyz0123456789_-';
  it('shows each token, and any run longer than an id that starts like one, as its id', () => {
    expect(redactTokens(`a ${t} b ${t}`)).toBe('a edbx_Q2x9fA… b edbx_Q2x9fA…');
    // Cut short by a shown value, or with more after it: still more of the secret than an id.
    expect(redactTokens(`"${t.slice(0, 30)}…" (60 characters)`)).toBe('"edbx_Q2x9fA……" (60 characters)');
    expect(redactTokens(`/p/${t}x?v=1`)).toBe('/p/edbx_Q2x9fA…?v=1');
  });

  it('leaves token ids, error codes and other text alone', () => {
    for (const text of [
      'token edbx_Q2x9fA revoked',
      'EDBX_ERR_TOKEN_REVOKED',
      'eventdbx_plugin_lag',
      'edbx_',
      '',
    ])
      expect(redactTokens(text)).toBe(text);
  });
});
