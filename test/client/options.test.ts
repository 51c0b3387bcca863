/**
 * Options and arguments the SDK checks before anything is sent (QA qa-sdk #2, #3, #7): timeouts and
 * retry values a Node timer cannot honour, a pinned key that is not an Ed25519 public key in PEM, a
 * version below 1. A real in-process server (in-memory engine, with the event stream) on 127.0.0.1
 * answers, behind a fetch that counts what is sent; `audit()` runs against a fake ledger (fake.ts).
 */
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ClientOptions,
  EventDbxClient,
  EventDbxConfigError,
  MemoryCheckpointStore,
} from '../../src/client/index.js';
import { leafHash } from '../../src/core/merkle/hash.js';
import { streamFeature } from '../../src/server/routes/stream.js';
import { freePort } from '../helpers/cli.js';
import { type TestServer, testServer } from '../helpers/http.js';
import { ledgerServer, signer } from './fake.js';
import { countingClient, rejection, sent } from './checks.js';

/** What the constructor throws with these options (fails the test when it throws nothing). */
function thrown(o: ClientOptions): unknown {
  try {
    new EventDbxClient(o);
  } catch (e) {
    return e;
  }
  return expect.fail(`accepted ${JSON.stringify(o)}`);
}

let s: TestServer;
const client = (o: ClientOptions = {}) => countingClient(s, o);

beforeAll(async () => {
  s = await testServer({
    extraRoutes: [(app, ctx) => streamFeature.routes!(app, ctx, undefined as never)],
  });
});
afterAll(() => s.close());

describe('timeouts and retry values are checked by the constructor and subscribe() (qa-sdk #2)', () => {
  it('refuses what a Node timer cannot wait, naming the option and the range', () => {
    for (const timeoutMs of [-5, NaN, 2 ** 31, 3e9, 1.5, -Infinity]) {
      const e = thrown({ url: s.url, timeoutMs });
      expect(e, String(timeoutMs)).toBeInstanceOf(EventDbxConfigError);
      expect((e as Error).message).toBe(
        `timeoutMs must be a whole number of ms from 1 to 2147483647, or 0 or Infinity for no timeout; got ${String(timeoutMs)}`,
      );
    }
    const retry: Array<[ClientOptions['retry'], string]> = [
      [{ retries: -1 }, 'retry.retries must be a whole number >= 0 (0 = never retry), got -1'],
      [{ retries: 1.5 }, 'retry.retries must be a whole number >= 0 (0 = never retry), got 1.5'],
      [{ minDelayMs: -1 }, 'retry.minDelayMs must be a whole number of ms from 0 to 2147483647, got -1'],
      [
        { maxDelayMs: Infinity },
        'retry.maxDelayMs must be a whole number of ms from 0 to 2147483647, got Infinity',
      ],
    ];
    for (const [r, message] of retry) expect(thrown({ url: s.url, retry: r })).toMatchObject({ message });
  });

  it('timeoutMs Infinity (and 0) mean no timeout: a slow answer still arrives', async () => {
    const slow: typeof fetch = async (input, init) => {
      await new Promise((r) => setTimeout(r, 30));
      return fetch(input, init);
    };
    for (const timeoutMs of [Infinity, 0, 60_000]) {
      const h = await client({ timeoutMs, fetch: slow }).health();
      expect(h, String(timeoutMs)).toMatchObject({ status: 'ok' });
    }
  });

  it('a custom fetch that rejects with no error at all is a connection error, not a TypeError', async () => {
    for (const thrown of [undefined, null, 'down']) {
      const e = await client({ fetch: () => Promise.reject(thrown), retry: { retries: 0 } })
        .health()
        .catch((x: unknown) => x);
      expect(e).toMatchObject({
        code: 'EDBX_ERR_CONNECTION',
        message: `GET /health failed: ${String(thrown)}`,
      });
    }
  });

  it('subscribe() refuses a bad idleTimeoutMs or delay from its first next(); Infinity waits for ever', async () => {
    const db = client();
    for (const [o, option] of [
      [{ idleTimeoutMs: -1 }, 'idleTimeoutMs'],
      [{ idleTimeoutMs: NaN }, 'idleTimeoutMs'],
      [{ idleTimeoutMs: 2 ** 31 }, 'idleTimeoutMs'],
      [{ minDelayMs: -1 }, 'minDelayMs'],
      [{ maxAttempts: 0 }, 'maxAttempts'],
    ] as const) {
      const e = await rejection(db.subscribe({ from: 1, ...o }).next());
      expect(e).toBeInstanceOf(EventDbxConfigError);
      expect((e as Error).message.startsWith(`${option} must be a whole number`)).toBe(true);
    }
    await db.append('patient', 'p-stream', { event_type: 'x', payload: { n: 1 } });
    await db.append('patient', 'p-stream', { event_type: 'x', payload: { n: 2 } });
    const stop = AbortSignal.timeout(5_000);
    const seen: number[] = [];
    let attempts = 0;
    const watched = client({
      fetch: (input, init) => (attempts++, fetch(input, init)),
    });
    for await (const e of watched.subscribe({
      from: 1,
      aggregate: 'patient',
      idleTimeoutMs: Infinity,
      signal: stop,
    })) {
      if (e.aggregate_id === 'p-stream') seen.push(Number(e.payload.n));
      if (seen.length === 2) break;
    }
    expect(seen).toEqual([1, 2]);
    expect(attempts).toBe(1);
  });
});

describe('the pinned publicKey is checked by the constructor (qa-sdk #3)', () => {
  const key = signer();
  const leaves = Array.from({ length: 5 }, (_, i) => leafHash(Buffer.from(`leaf ${i}`)));

  it('a PEM whose newlines are a literal "\\n" (a .env file) is accepted, and audit() verifies with it', async () => {
    const oneLine = key.publicKeyPem.trim().replace(/\n/g, '\\n');
    expect(oneLine).not.toContain('\n');
    const db = new EventDbxClient({
      url: 'http://127.0.0.1:1',
      publicKey: oneLine,
      trust: new MemoryCheckpointStore(),
      fetch: ledgerServer(leaves, 5, key),
    });
    expect((await db.audit()).current.size).toBe(5);
  });

  it('a PEM indented line by line (under a YAML key) is accepted, and audit() verifies with it (qa-today2 #7)', async () => {
    for (const indented of [
      key.publicKeyPem.replace(/^/gm, '    '),
      key.publicKeyPem.replace(/^/gm, '\t').replace(/\n/g, ' \r\n'),
    ]) {
      const db = new EventDbxClient({
        url: 'http://127.0.0.1:1',
        publicKey: indented,
        trust: new MemoryCheckpointStore(),
        fetch: ledgerServer(leaves, 5, key),
      });
      expect((await db.audit()).current.size).toBe(5);
    }
  });

  it('an empty publicKey (EVENTDBX_PUBLIC_KEY= in a compose file) pins nothing: audit() asks for a key', async () => {
    for (const publicKey of ['', '  \n']) {
      const db = new EventDbxClient({
        url: 'http://127.0.0.1:1',
        publicKey,
        trust: new MemoryCheckpointStore(),
        fetch: ledgerServer(leaves, 5, key),
      });
      const e = await rejection(db.audit());
      expect(e).toBeInstanceOf(EventDbxConfigError);
      expect((e as Error).message).toMatch(/^no public key is pinned/);
    }
  });

  it('anything but an Ed25519 public key in PEM is EventDbxConfigError at construction', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const cases: Array<[string, RegExp]> = [
      ['pem', /^publicKey must be the Ed25519 public key in PEM .*, got "pem"$/],
      [key.publicKeyPem.split('\n')[1]!, /\(-----BEGIN PUBLIC KEY----- …\)/], // the base64 line alone
      ['-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n', /this one cannot be read/],
      [key.privateKeyPem, /not a private key/],
      [rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString(), /this one is an rsa key$/],
    ];
    for (const [publicKey, message] of cases) {
      const e = thrown({ url: 'http://127.0.0.1:1', publicKey });
      expect(e, publicKey).toBeInstanceOf(EventDbxConfigError);
      expect((e as Error).message, publicKey).toMatch(message);
    }
  });
});

describe('a version below 1 is a client error wherever it is given (qa-sdk #7)', () => {
  it('getAggregate({ version: 0 | 1.5 | -1 }) is EDBX_ERR_CLIENT_CONFIG; nothing is sent', async () => {
    const db = client();
    sent.count = 0;
    for (const version of [0, 1.5, -1, NaN]) {
      const e = await rejection(db.getAggregate('patient', 'p-ok', { version }));
      expect(e).toBeInstanceOf(EventDbxConfigError);
      expect((e as Error).message).toBe(`version must be a whole number >= 1, got ${String(version)}`);
    }
    expect(sent.count).toBe(0);
    await db.append('patient', 'p-ok', { event_type: 'x', payload: { n: 1 } });
    expect((await db.getAggregate('patient', 'p-ok', { version: 1 })).version).toBe(1);
  });
});

describe('an option or field given as undefined is as if absent (qa-sdk2 #3)', () => {
  it('retry fields left undefined take their defaults; every other option and field undefined works', async () => {
    let attempts = 0;
    const down = new EventDbxClient({
      url: `http://127.0.0.1:${await freePort()}`,
      retry: { retries: undefined, minDelayMs: 1, maxDelayMs: 1 },
      fetch: (input, init) => (attempts++, fetch(input, init)),
    });
    expect(await rejection(down.health())).toMatchObject({ code: 'EDBX_ERR_CONNECTION' });
    expect(attempts).toBe(1 + 6); // the default 6 retries

    const db = new EventDbxClient({
      url: s.url,
      token: s.token,
      retry: undefined,
      timeoutMs: undefined,
      generateEventIds: undefined,
      publicKey: undefined,
      trust: undefined,
      headers: undefined,
      fetch: undefined,
    });
    const signal = undefined;
    const e = await db.append(
      'patient',
      'p-undefined',
      { event_type: 'x', payload: { n: 1 }, expected_version: undefined, event_id: undefined },
      { signal },
    );
    expect(e.version).toBe(1);
    const view = await db.getAggregate('patient', 'p-undefined', { version: undefined, signal });
    expect(view.version).toBe(1);
    const events = [];
    for await (const ev of db.events('patient', 'p-undefined', {
      fromVersion: undefined,
      pageSize: undefined,
    }))
      events.push(ev.version);
    expect(events).toEqual([1]);
    for await (const ev of db.subscribe({
      from: 1,
      aggregate: 'patient',
      signal,
      idleTimeoutMs: undefined,
      minDelayMs: undefined,
      maxDelayMs: undefined,
      maxAttempts: undefined,
      onCaughtUp: undefined,
    })) {
      if (ev.aggregate_id === 'p-undefined') break;
    }
  });
});
