/**
 * A replay position out of range, over HTTP, names the body field `from` (qa2-spec #9: it named the
 * CLI flag `--from`) and says that positions count audit entries too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pluginFeature } from '../../src/server/routes/plugins.js';
import type { SecureStore } from '../../src/store/secure.js';
import { type TestServer, post, testServer } from '../helpers/http.js';

describe('POST /v1/plugins/{name}/replay with a bad position', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await testServer({ extraRoutes: [(app, ctx) => pluginFeature.routes!(app, ctx, {} as SecureStore)] });
  });
  afterAll(() => s?.close());

  it('names the body field, not the CLI flag', async () => {
    const size = s.store.size;
    const r = await post(s, '/v1/plugins/csv/replay', { from: 99999 });
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('EDBX_ERR_INVALID_ARGUMENT');
    expect(r.body.detail).toBe(
      `invalid body.from 99999: use a position from 1 to ${size + 1} (the ledger holds ${size} positions, audit entries included)`,
    );
  });
});
