/**
 * A request that arrives while the server closes is answered 503 problem+json EDBX_ERR_SHUTTING_DOWN
 * with Retry-After (QA item 4: it was fastify's plain `{"error":"Service Unavailable"}`, which the SDK
 * could only report as EDBX_ERR_UNEXPECTED_RESPONSE).
 */
import { describe, expect, it } from 'vitest';
import { raw, testServer } from '../helpers/http.js';

describe('shutdown', () => {
  it('answers requests that arrive while closing with 503 EDBX_ERR_SHUTTING_DOWN and Retry-After', async () => {
    const s = await testServer();
    let closed: Promise<void> | undefined;
    const r = await raw(s.port, async (sock) => {
      // A connection in the middle of its headers is not idle, so closing waits for its request.
      sock.write(`GET /v1/aggregates HTTP/1.1\r\nHost: x\r\n`);
      // Give the server a moment to read them (ordering only; a late read fails the test, never passes it).
      await new Promise((resolve) => setTimeout(resolve, 100));
      closed = s.close();
      sock.write(`Authorization: Bearer ${s.token}\r\n\r\n`);
    });
    await closed;
    expect(r).toBeDefined();
    expect({ status: r!.status, code: r!.body?.code }, r!.text).toEqual({
      status: 503,
      code: 'EDBX_ERR_SHUTTING_DOWN',
    });
    expect(r!.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(Number(r!.headers['retry-after'])).toBeGreaterThan(0);
  });
});
