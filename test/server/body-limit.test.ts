/** The 413 for a body over the server limit says the limit in bytes (QA item 5: "the configured limit"). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestServer, post, testServer } from '../helpers/http.js';

describe('body limit', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await testServer({ bodyLimit: 1000 });
  });
  afterAll(() => s?.close());

  it('answers 413 EDBX_ERR_BODY_TOO_LARGE naming the limit in bytes', async () => {
    const r = await post(s, '/v1/aggregates/patient/p-1/events', {
      event_type: 'added',
      payload: { note: 'x'.repeat(2000) },
    });
    expect(r.status).toBe(413);
    expect(r.body.code).toBe('EDBX_ERR_BODY_TOO_LARGE');
    expect(r.body.detail).toContain('1000 bytes');
  });
});
