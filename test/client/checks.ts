/** Helpers of the SDK tests that check what the client refuses, and what it sends. */
import { expect } from 'vitest';
import { type ClientOptions, EventDbxClient } from '../../src/client/index.js';
import type { TestServer } from '../helpers/http.js';

/** Rejected with (returns) the error; fails the test when it resolves. */
export async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    (v) => expect.fail(`resolved with ${JSON.stringify(v)}`),
    (e: unknown) => e,
  );
}

/** Requests sent by `countingClient`s since `count` was last set to 0. */
export const sent = { count: 0 };

const counting: typeof fetch = (input, init) => {
  sent.count++;
  return fetch(input, init);
};

/** A client of `server` that does not retry, over a fetch that counts what is sent. */
export const countingClient = (server: TestServer, o: ClientOptions = {}): EventDbxClient =>
  new EventDbxClient({ url: server.url, token: server.token, fetch: counting, retry: false, ...o });
