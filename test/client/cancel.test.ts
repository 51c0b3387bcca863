/**
 * An aborted call rejects with `EventDbxCancelledError` (`EDBX_ERR_CANCELLED`), its `cause` the
 * signal's reason, so that `switch (e.code)` sees it (QA qa-sdk #5): aborted before the call, while it
 * waits for an answer, and while it waits to retry. A real in-process server on 127.0.0.1, and a port
 * where nothing listens.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ClientOptions,
  EventDbxCancelledError,
  EventDbxClient,
  EventDbxClientError,
} from '../../src/client/index.js';
import { freePort } from '../helpers/cli.js';
import { type TestServer, testServer } from '../helpers/http.js';
import { countingClient, rejection } from './checks.js';

let s: TestServer;
const client = (o: ClientOptions = {}) => countingClient(s, o);

beforeAll(async () => {
  s = await testServer();
});
afterAll(() => s.close());

describe('an aborted call rejects with EDBX_ERR_CANCELLED, its cause the signal reason (qa-sdk #5)', () => {
  it('aborted before, while waiting for the answer, and during the retry backoff', async () => {
    const reason = new Error('user went away');
    const before = await rejection(
      client().getAggregate('patient', 'x', { signal: AbortSignal.abort(reason) }),
    );
    expect(before).toBeInstanceOf(EventDbxCancelledError);
    expect(before).toBeInstanceOf(EventDbxClientError);
    expect(before).toMatchObject({
      code: 'EDBX_ERR_CANCELLED',
      cause: reason,
      message: 'the call was aborted by its signal (Error: user went away)',
    });

    const hanging: typeof fetch = (_input, init) =>
      new Promise((_, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal!.reason)));
    const waiting = await rejection(client({ fetch: hanging }).health({ signal: AbortSignal.timeout(20) }));
    expect(waiting).toMatchObject({ code: 'EDBX_ERR_CANCELLED', cause: { name: 'TimeoutError' } });

    // A server that is down: the signal fires while the SDK waits between retries.
    const down = new EventDbxClient({
      url: `http://127.0.0.1:${await freePort()}`,
      retry: { retries: 5, minDelayMs: 1000, maxDelayMs: 1000 },
    });
    const backoff = await rejection(down.listAggregates({}, { signal: AbortSignal.timeout(200) }));
    expect(backoff).toMatchObject({ code: 'EDBX_ERR_CANCELLED', cause: { name: 'TimeoutError' } });
  });
});
