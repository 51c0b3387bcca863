/**
 * Payload numbers that would not be stored as written are refused before anything is sent (QA qa-sdk
 * #1, #13): an integer beyond ±(2^53−1) has lost digits by the time the SDK sees it, and NaN or
 * ±Infinity would arrive as null. A real in-process server (in-memory engine) on 127.0.0.1 answers,
 * behind a fetch that counts what is sent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClientOptions, EventDbxConfigError } from '../../src/client/index.js';
import { type TestServer, testServer } from '../helpers/http.js';
import { countingClient, rejection, sent } from './checks.js';

let s: TestServer;
const client = (o: ClientOptions = {}) => countingClient(s, o);
/** A payload as plain JavaScript passes it: its types do not allow a BigInt. */
const js = (payload: object) => payload as Record<string, string>;

beforeAll(async () => {
  s = await testServer();
});
afterAll(() => s.close());

describe('payload numbers that would not be stored as written are refused (qa-sdk #1, #13)', () => {
  it('an integer beyond 2^53 is EDBX_ERR_CLIENT_CONFIG naming the field; nothing is sent', async () => {
    const db = client();
    sent.count = 0;
    const e = await rejection(
      db.append('patient', 'p-big', { event_type: 'vitals', payload: { mrn: 9007199254740993 } }),
    );
    expect(e).toBeInstanceOf(EventDbxConfigError);
    expect((e as Error).message).toBe(
      'payload.mrn is 9007199254740992, an integer beyond ±(2^53−1) that JavaScript cannot hold exactly (its digits may already have changed): send the exact digits as a string',
    );
    const tx = await rejection(
      db.transactionOutcome([
        { aggregate_type: 'patient', aggregate_id: 'p-a', event_type: 'x', payload: { n: 1 } },
        { aggregate_type: 'patient', aggregate_id: 'p-b', event_type: 'x', payload: { 'n-2': -1e21 } },
      ]),
    );
    expect(tx).toMatchObject({ code: 'EDBX_ERR_CLIENT_CONFIG' });
    expect((tx as Error).message).toMatch(/^events\[1\]\.payload\["n-2"\] is -1e\+21, an integer beyond/);
    expect(sent.count).toBe(0);
  });

  it('NaN and ±Infinity are refused naming the field, not sent as null', async () => {
    const db = client();
    sent.count = 0;
    for (const bad of [NaN, Infinity, -Infinity]) {
      const e = await rejection(
        db.append('patient', 'p-nan', { event_type: 'vitals', payload: { hr: bad } }),
      );
      expect(e).toMatchObject({
        code: 'EDBX_ERR_CLIENT_CONFIG',
        message: `payload.hr is ${String(bad)}, which JSON cannot carry (it would be sent as null): send a finite number, or a string`,
      });
    }
    expect(sent.count).toBe(0);
  });

  it("a BigInt is refused naming the field, not with JSON.stringify's message (qa-today2 #7)", async () => {
    const db = client();
    sent.count = 0;
    const e = await rejection(
      db.append('patient', 'p-bigint', { event_type: 'vitals', payload: js({ mrn: 9007199254740993n }) }),
    );
    expect(e).toBeInstanceOf(EventDbxConfigError);
    expect((e as Error).message).toBe(
      'payload.mrn is the BigInt 9007199254740993n, which JSON cannot carry: send its exact digits as a string (String(value))',
    );
    const tx = await rejection(
      db.transaction([
        { aggregate_type: 'patient', aggregate_id: 'p-a', event_type: 'x', payload: { n: 1 } },
        { aggregate_type: 'patient', aggregate_id: 'p-b', event_type: 'x', payload: js({ ids: ['1', 2n] }) },
      ]),
    );
    expect(tx).toMatchObject({ code: 'EDBX_ERR_CLIENT_CONFIG' });
    expect((tx as Error).message).toMatch(/^events\[1\]\.payload\.ids\[1\] is the BigInt 2n/);
    expect(sent.count).toBe(0);
  });

  it('a BigInt is sent when the program gave BigInt a toJSON, as JSON.stringify does', async () => {
    const proto = BigInt.prototype as { toJSON?: () => string };
    proto.toJSON = function (this: bigint) {
      return this.toString();
    };
    try {
      const e = await client().append('patient', 'p-bigint-json', {
        event_type: 'vitals',
        payload: js({ mrn: 9007199254740993n }),
      });
      expect(e.payload).toEqual({ mrn: '9007199254740993' });
    } finally {
      delete proto.toJSON;
    }
  });

  it('safe integers, decimals (as JavaScript prints them) and exact digits in strings are stored', async () => {
    const db = client();
    const e = await db.append('patient', 'p-ok', {
      event_type: 'vitals',
      payload: { max: 9007199254740991, min: -9007199254740991, temp: 70.1, mrn: '9007199254740993' },
    });
    expect(e.payload).toEqual({
      max: '9007199254740991',
      min: '-9007199254740991',
      temp: '70.1',
      mrn: '9007199254740993',
    });
  });
});
