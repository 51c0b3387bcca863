/**
 * The bound on an aggregate's state (QA-scale finding 3: each event adding a new 200 KB field took
 * appends from 101 ms to 1.3 s and a GET to 76 MB, and nothing refused the growth): over HTTP it is
 * a 413 problem that writes nothing and costs nothing from the token, and `max_state_bytes` /
 * `EVENTDBX_MAX_STATE_BYTES` reach the store a server opens.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { openDataDir } from '../../src/store/secure.js';
import { createToken } from '../../src/store/tokens.js';
import { expectCode } from '../helpers/expect.js';
import { type TestServer, get, post, testServer } from '../helpers/http.js';
import { tempDirs } from '../helpers/temp.js';

const ctx = { issuedBy: { group: 'local', user: 'test' } };

describe('state limit over HTTP', () => {
  let s: TestServer;
  let limited: string;
  beforeAll(async () => {
    s = await testServer({ storeOptions: { maxStateBytes: 4096 } });
    ({ token: limited } = await createToken(s.store, { group: 'doctors', user: 'ann', limit: 2 }, ctx));
  });
  afterAll(() => s?.close());

  const bearer = () => ({ authorization: `Bearer ${limited}` });

  it('answers 413 problem+json EDBX_ERR_STATE_TOO_LARGE; nothing written, nothing charged', async () => {
    const one = await post(s, '/v1/aggregates/note/n-1/events', {
      event_type: 'noted',
      payload: { a: 'x'.repeat(3000) },
    });
    expect(one.status).toBe(201);
    const size = s.store.size;

    const r = await post(
      s,
      '/v1/aggregates/note/n-1/events',
      { event_type: 'noted', payload: { b: 'y'.repeat(3000) } },
      bearer(),
    );
    expect(r.status).toBe(413);
    expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(r.body).toMatchObject({ status: 413, code: 'EDBX_ERR_STATE_TOO_LARGE' });
    expect(r.body.detail).toContain('note/n-1');
    expect(r.body.detail).toContain('4096 bytes');

    const tx = await post(
      s,
      '/v1/transactions',
      {
        events: [
          { aggregate_type: 'note', aggregate_id: 'n-2', event_type: 'noted', payload: { a: 'ok' } },
          {
            aggregate_type: 'note',
            aggregate_id: 'n-1',
            event_type: 'noted',
            payload: { c: 'z'.repeat(2000) },
          },
        ],
      },
      bearer(),
    );
    expect(tx.status).toBe(413);
    expect(tx.body.code).toBe('EDBX_ERR_STATE_TOO_LARGE');

    expect(s.store.size).toBe(size);
    expect((await get(s, '/v1/aggregates/note/n-1')).body.version).toBe(1);
    expect((await get(s, '/v1/aggregates/note/n-2')).status).toBe(404);
    // The refusals cost nothing: the token's two writes are still there, and no third.
    for (let i = 0; i < 2; i++) {
      const ok = await post(
        s,
        '/v1/aggregates/note/n-3/events',
        { event_type: 'noted', payload: { i } },
        bearer(),
      );
      expect(ok.status).toBe(201);
    }
    const spent = await post(
      s,
      '/v1/aggregates/note/n-3/events',
      { event_type: 'noted', payload: {} },
      bearer(),
    );
    expect(spent.body.code).toBe('EDBX_ERR_TOKEN_EXHAUSTED');
  });
});

describe('state limit configuration', () => {
  const tempDir = tempDirs('edbx-state-limit-', { until: 'all' });
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir();
  });

  const keys = { EVENTDBX_MASTER_KEY: 'state-master', EVENTDBX_DEK: 'state-dek' };
  const append = (payload: Record<string, string>) => ({
    aggregate_type: 'note',
    aggregate_id: 'n-1',
    event_type: 'noted',
    payload,
  });

  it('defaults to 16 MiB, is read from max_state_bytes, and EVENTDBX_MAX_STATE_BYTES overrides it', async () => {
    const file = path.join(dir, 'config.json');
    expect((await loadConfig(file, keys)).maxStateBytes).toBe(16 * 1024 * 1024);
    await writeFile(file, JSON.stringify({ data_dir: 'data', max_state_bytes: 8192 }));
    expect((await loadConfig(file, keys)).maxStateBytes).toBe(8192);
    const config = await loadConfig(file, { ...keys, EVENTDBX_MAX_STATE_BYTES: '2048' });
    expect(config.maxStateBytes).toBe(2048);

    // The store a server or command opens from the configuration uses it.
    const secure = await openDataDir(config);
    try {
      await secure.store.append(append({ a: 'x'.repeat(1500) }), ctx);
      await expectCode(secure.store.append(append({ b: 'y'.repeat(1500) }), ctx), 'EDBX_ERR_STATE_TOO_LARGE');
      expect(secure.store.size).toBe(1);
    } finally {
      await secure.store.close();
    }
  });

  it('refuses a limit under 1024 bytes, in the file or the environment', async () => {
    const file = path.join(dir, 'small.json');
    await expectCode(
      loadConfig(file, { ...keys, EVENTDBX_MAX_STATE_BYTES: '100' }),
      'EDBX_ERR_CONFIG_INVALID',
    );
    await writeFile(file, JSON.stringify({ max_state_bytes: 100 }));
    await expectCode(loadConfig(file, keys), 'EDBX_ERR_CONFIG_INVALID');
  });
});
