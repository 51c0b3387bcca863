/**
 * The JSON body parser (QA item 2): bytes that are not UTF-8, non-UTF-8 charsets, compressed bodies,
 * duplicate keys and `__proto__` are refused with a precise problem; numbers in payloads keep the
 * exact digits sent (JavaScript numbers would silently round 12345678901234567890).
 */
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestServer, get, post, rawRequest, testServer } from '../helpers/http.js';

describe('JSON request bodies', () => {
  let s: TestServer;
  const path = '/v1/aggregates/patient/p-1/events';
  const head = (extra: string) =>
    `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.token}\r\n${extra}`;
  beforeAll(async () => {
    s = await testServer();
  });
  afterAll(() => s?.close());

  it('refuses bytes that are not UTF-8 instead of replacing them with U+FFFD', async () => {
    const body = Buffer.concat([
      Buffer.from('{"event_type":"added","payload":{"name":"'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"}}'),
    ]);
    const r = await rawRequest(s.port, head('Content-Type: application/json'), body);
    expect(r.status).toBe(400);
    expect(r.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(r.body.code).toBe('EDBX_ERR_INVALID_JSON');
    expect(r.body.detail).toMatch(/not valid UTF-8/);
  });

  it('refuses a charset other than UTF-8 with 415, and accepts charset=UTF-8', async () => {
    const body = JSON.stringify({ event_type: 'added', payload: { name: 'x' } });
    const latin = await rawRequest(s.port, head('Content-Type: application/json; charset=latin1'), body);
    expect(latin.status).toBe(415);
    expect(latin.body.code).toBe('EDBX_ERR_UNSUPPORTED_MEDIA_TYPE');
    expect(latin.body.detail).toMatch(/latin1/);
    const utf8 = await rawRequest(s.port, head('Content-Type: application/json; charset=UTF-8'), body);
    expect(utf8.status).toBe(201);
  });

  it('refuses a compressed body with 415 instead of parsing the compressed bytes', async () => {
    const body = gzipSync(JSON.stringify({ event_type: 'added', payload: { name: 'x' } }));
    const r = await rawRequest(
      s.port,
      head('Content-Type: application/json\r\nContent-Encoding: gzip'),
      body,
    );
    expect(r.status).toBe(415);
    expect(r.body.code).toBe('EDBX_ERR_UNSUPPORTED_MEDIA_TYPE');
    expect(r.body.detail).toMatch(/Content-Encoding gzip/);
  });

  it('refuses duplicate keys, naming the key, in the payload and at the top level', async () => {
    for (const text of [
      '{"event_type":"added","payload":{"a":"1","a":"2"}}',
      '{"event_type":"added","event_type":"removed","payload":{}}',
    ]) {
      const r = await post(s, path, text);
      expect(r.status).toBe(400);
      expect(r.body.code).toBe('EDBX_ERR_INVALID_JSON');
      expect(r.body.detail).toMatch(/"(a|event_type)" appears more than once/);
    }
  });

  it('says that a field named __proto__ is not allowed', async () => {
    const r = await post(s, path, '{"event_type":"added","payload":{"__proto__":"x"}}');
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('EDBX_ERR_INVALID_FIELD_NAME');
    expect(r.body.detail).toContain('"__proto__"');
    expect(r.body.detail).toMatch(/not allowed/);
  });

  it('stores numbers in a payload with the exact digits sent', async () => {
    const r = await post(
      s,
      '/v1/aggregates/patient/p-2/events',
      '{"event_type":"added","payload":{"big":12345678901234567890,"price":1.50,"n":-0,"e":1E400,"s":"x"},"expected_version":0}',
    );
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    expect(r.body.payload).toEqual({
      big: '12345678901234567890',
      price: '1.50',
      n: '-0',
      e: '1E400',
      s: 'x',
    });
    expect((await get(s, '/v1/aggregates/patient/p-2')).body.state.big).toBe('12345678901234567890');

    const tx = await post(
      s,
      '/v1/transactions',
      '{"events":[{"aggregate_type":"patient","aggregate_id":"p-3","event_type":"added","payload":{"id":9007199254740993}}]}',
    );
    expect(tx.status).toBe(201);
    expect(tx.body.events[0].payload.id).toBe('9007199254740993');
  });
});
