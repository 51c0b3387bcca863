/**
 * Regression of the qa-full round's finding 3 (second half): nothing bounded the request bodies held
 * across connections, each of which may hold up to the body limit while its client withholds the last
 * byte. The bytes of bodies held at once are now bounded (`max_buffered_body_bytes`): a body is counted
 * before it is buffered (by its Content-Length, or its chunks as they arrive), one over is refused with
 * 503 EDBX_ERR_BODY_BUFFER_FULL and Retry-After, and what a client that goes away had taken is given
 * back (`eventdbx_http_request_body_bytes` on /metrics).
 */
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_BUFFERED_BODY_BYTES, loadConfig } from '../../src/config/config.js';
import { createToken } from '../../src/store/tokens.js';
import { expectCode } from '../helpers/expect.js';
import { GatedEngine } from '../helpers/gated-engine.js';
import { tempDirs } from '../helpers/temp.js';
import { type TestServer, appendBodyOf, openRequests, post, testServer } from '../helpers/http.js';

const appendHead = (token: string, length: number | 'chunked', where = 'patient/p-1') =>
  `POST /v1/aggregates/${where}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n` +
  'Content-Type: application/json\r\n' +
  (length === 'chunked' ? 'Transfer-Encoding: chunked' : `Content-Length: ${length}`);

const body = appendBodyOf;

const chunk = (data: string) => `${data.length.toString(16)}\r\n${data}\r\n`;

async function heldBytes(s: TestServer): Promise<number> {
  const text = await (
    await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${s.token}` } })
  ).text();
  const m = /^eventdbx_http_request_body_bytes (\d+)$/m.exec(text);
  if (!m) throw new Error('no eventdbx_http_request_body_bytes in /metrics');
  return Number(m[1]);
}

async function until(what: () => Promise<boolean>, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await what())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const open = openRequests();

describe('the bytes of request bodies held at once are bounded (qa-full #3)', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await testServer({ bodyLimit: 10_000, maxBufferedBodyBytes: 25_000, logs: true });
  });
  afterAll(() => s?.close());

  it('refuses a body over the bound with 503 and Retry-After at once; one under it is taken', async () => {
    // Two clients announce 10,000 bytes each and stop partway: 20,000 bytes counted.
    const a = open(s.port, appendHead(s.token, 10_000, 'patient/a'));
    a.socket.write('{"event_type":"noted","payload":{"note":"' + 'x'.repeat(9_000));
    const b = open(s.port, appendHead(s.token, 10_000, 'patient/b'));
    await until(async () => (await heldBytes(s)) === 20_000);

    const over = open(s.port, appendHead(s.token, 9_000, 'patient/c'));
    const r = await over.answer();
    expect(r?.status).toBe(503);
    expect(r?.body.code).toBe('EDBX_ERR_BODY_BUFFER_FULL');
    expect(r?.body.detail).toContain('max_buffered_body_bytes 25000');
    expect(r?.headers['retry-after']).toBe('1');
    expect(r?.headers['content-type']).toMatch(/^application\/problem\+json/);
    // Turned away by design: a warning, not a server error.
    expect(s.logs.filter((l) => l.code === 'EDBX_ERR_BODY_BUFFER_FULL').map((l) => l.level)).toEqual([40]);

    // One that fits beside them is taken.
    const small = await post(s, '/v1/aggregates/patient/d/events', JSON.parse(body(500)));
    expect(small.status).toBe(201);
    expect(await heldBytes(s)).toBe(20_000);

    // The clients go away mid-body: what they took is given back, and the refused size now fits.
    a.socket.destroy();
    b.socket.destroy();
    await until(async () => (await heldBytes(s)) === 0);
    const again = await post(s, '/v1/aggregates/patient/c/events', JSON.parse(body(9_000)));
    expect(again.status).toBe(201);
    expect(await heldBytes(s)).toBe(0);
  });

  it('counts nothing for a request refused before its body', async () => {
    const by = { issuedBy: { group: 'local', user: 'test' } };
    const ro = (await createToken(s.store, { group: 'monitor', user: 'scraper', readOnly: true }, by)).token;
    const r = await open(s.port, appendHead(ro, 10_000)).answer();
    expect(r?.body.code).toBe('EDBX_ERR_TOKEN_READ_ONLY');
    expect(await heldBytes(s)).toBe(0);
  });

  it('gives back the body of a request behind another on its connection when the client goes away', async () => {
    // The first request is a read held in the store's scan: the second's answer waits behind it.
    const engine = new GatedEngine();
    const g = await testServer({ engine, bodyLimit: 10_000, maxBufferedBodyBytes: 25_000 });
    try {
      for (let i = 0; i < 3; i++)
        expect((await post(g, '/v1/aggregates/patient/k/events', JSON.parse(body(100)))).status).toBe(201);
      const held = engine.holdAfter(1);
      const read = `GET /v1/aggregates/patient/k/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${g.token}\r\n\r\n`;
      const c = open(g.port, `${read}${appendHead(g.token, 10_000, 'patient/l')}`);
      c.socket.write('{"event_type":"noted"');
      await held;
      await until(async () => (await heldBytes(g)) === 10_000);
      c.socket.destroy();
      await new Promise((r) => setTimeout(r, 50));
      engine.release();
      await until(async () => (await heldBytes(g)) === 0);
    } finally {
      engine.release();
      await g.close();
    }
  });

  it('counts a chunked body as its chunks arrive, refuses it once it passes the bound, and gives it back', async () => {
    const held = open(s.port, appendHead(s.token, 10_000, 'patient/e'));
    const streaming = open(s.port, appendHead(s.token, 'chunked', 'patient/f'));
    streaming.socket.write(chunk('{"event_type":"noted","payload":{"note":"' + 'x'.repeat(7_000)));
    await until(async () => (await heldBytes(s)) === 17_041);
    const chunked = open(s.port, appendHead(s.token, 'chunked', 'patient/g'));
    chunked.socket.write(chunk('{"event_type":"noted","payload":{"note":"' + 'x'.repeat(5_000)));
    await until(async () => (await heldBytes(s)) === 22_082);
    expect(await chunked.answer(200)).toBeUndefined();
    // The next 5,000 bytes would pass 25,000.
    chunked.socket.write(chunk('x'.repeat(5_000)));
    const r = await chunked.answer();
    expect(r?.status).toBe(503);
    expect(r?.body.code).toBe('EDBX_ERR_BODY_BUFFER_FULL');
    expect(r?.headers['retry-after']).toBe('1');
    await until(async () => (await heldBytes(s)) === 17_041);

    held.socket.destroy();
    streaming.socket.destroy();
    await until(async () => (await heldBytes(s)) === 0);

    // A whole chunked body under the bound is taken.
    const whole = open(s.port, appendHead(s.token, 'chunked', 'patient/h'));
    whole.socket.write(chunk(body(3_000)) + '0\r\n\r\n');
    expect((await whole.answer())?.status).toBe(201);
    await until(async () => (await heldBytes(s)) === 0);
  });
});

describe('max_buffered_body_bytes', () => {
  const none = { EVENTDBX_CONFIG: path.join(os.tmpdir(), 'edbx-no-such-config.json') };
  const tempDir = tempDirs('edbx-body-budget-');

  it('is 64 MiB by default, or the body limit when max_payload_bytes makes that more', async () => {
    expect((await loadConfig(undefined, none)).maxBufferedBodyBytes).toBe(DEFAULT_MAX_BUFFERED_BODY_BYTES);
    expect(DEFAULT_MAX_BUFFERED_BODY_BYTES).toBe(64 * 1024 * 1024);
    const big = await loadConfig(undefined, {
      ...none,
      EVENTDBX_MAX_PAYLOAD_BYTES: String(32 * 1024 * 1024),
    });
    expect(big.maxBufferedBodyBytes).toBe(128 * 1024 * 1024);
  });

  it('is read from the config file and EVENTDBX_MAX_BUFFERED_BODY_BYTES (which wins)', async () => {
    const file = path.join(await tempDir(), 'c.json');
    await writeFile(file, JSON.stringify({ max_buffered_body_bytes: 8 * 1024 * 1024 }));
    expect((await loadConfig(file, {})).maxBufferedBodyBytes).toBe(8 * 1024 * 1024);
    const env = { EVENTDBX_MAX_BUFFERED_BODY_BYTES: String(16 * 1024 * 1024) };
    expect((await loadConfig(file, env)).maxBufferedBodyBytes).toBe(16 * 1024 * 1024);
  });

  it('is refused below the largest body the server takes, saying the least it may be', async () => {
    const file = path.join(await tempDir(), 'low.json');
    await writeFile(
      file,
      JSON.stringify({ max_buffered_body_bytes: 2 * 1024 * 1024, max_payload_bytes: 1024 * 1024 }),
    );
    const e = await expectCode(loadConfig(file, {}), 'EDBX_ERR_CONFIG_INVALID');
    expect(e.message).toContain('use at least 4194304');
    await expectCode(
      loadConfig(undefined, { ...none, EVENTDBX_MAX_BUFFERED_BODY_BYTES: '1000' }),
      'EDBX_ERR_CONFIG_INVALID',
    );
  });
});
