/**
 * Schema validation errors name the specific registry code and show the offending value (QA: every
 * validation error was EDBX_ERR_INVALID_ARGUMENT with an empty value, e.g. `invalid body.payload.a "":
 * must be string,number,boolean`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestServer, get, post, testServer } from '../helpers/http.js';

describe('validation errors: specific codes and the value sent', () => {
  let s: TestServer;
  const append = (body: unknown) => post(s, '/v1/aggregates/patient/p-1/events', body);
  beforeAll(async () => {
    s = await testServer();
    expect((await append({ event_type: 'added', payload: { a: 'x' } })).status).toBe(201);
  });
  afterAll(() => s?.close());

  it.each([
    [{ a: null }, 'EDBX_ERR_INVALID_FIELD_VALUE', /field "a" is null/],
    [{ a: { b: 'c' } }, 'EDBX_ERR_INVALID_FIELD_VALUE', /field "a" is an object/],
    [{ a: ['x'] }, 'EDBX_ERR_INVALID_FIELD_VALUE', /field "a" is an array/],
  ])('payload %j → %s', async (payload, code, detail) => {
    const r = await append({ event_type: 'added', payload });
    expect(r.status).toBe(400);
    expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(r.body.code).toBe(code);
    expect(r.body.detail).toMatch(detail);
  });

  it.each([
    [{ event_type: 'added', payload: 'x' }, 'EDBX_ERR_INVALID_PAYLOAD', /got a string/],
    [{ event_type: 'added', payload: ['x'] }, 'EDBX_ERR_INVALID_PAYLOAD', /got an array/],
    [{ event_type: 'added', payload: {}, event_id: '' }, 'EDBX_ERR_INVALID_EVENT_ID', /event id ""/],
    [
      { event_type: 'added', payload: {}, event_id: 'e'.repeat(129) },
      'EDBX_ERR_INVALID_EVENT_ID',
      /event id "eeee/,
    ],
    [{ event_type: 'added', payload: {}, expected_version: -1 }, 'EDBX_ERR_INVALID_EXPECTED_VERSION', /-1/],
    [
      { event_type: 'added', payload: {}, expected_version: 1.5 },
      'EDBX_ERR_INVALID_EXPECTED_VERSION',
      /1\.5/,
    ],
    [{ event_type: 'added', payload: {}, expected_version: '1' }, 'EDBX_ERR_INVALID_EXPECTED_VERSION', /"1"/],
  ])('body %j → %s', async (body, code, detail) => {
    const r = await append(body);
    expect(r.status).toBe(400);
    expect(r.body.code).toBe(code);
    expect(r.body.detail).toMatch(detail);
  });

  it('applies the same codes inside a transaction', async () => {
    const r = await post(s, '/v1/transactions', {
      events: [{ aggregate_type: 'patient', aggregate_id: 'p-2', event_type: 'added', payload: { a: null } }],
    });
    expect(r.body).toMatchObject({ status: 400, code: 'EDBX_ERR_INVALID_FIELD_VALUE' });
  });

  it('an empty transaction is EDBX_ERR_EMPTY_TRANSACTION, as documented (qa2-spec #4)', async () => {
    const r = await post(s, '/v1/transactions', { events: [] });
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('EDBX_ERR_EMPTY_TRANSACTION');
  });

  it('an event type that is not a string is EDBX_ERR_INVALID_EVENT_TYPE (qa2-spec #4)', async () => {
    const r = await append({ event_type: 5, payload: {} });
    expect(r.body).toMatchObject({ status: 400, code: 'EDBX_ERR_INVALID_EVENT_TYPE' });
    expect(r.body.detail).toMatch(/invalid event type 5:/);
  });

  it('names a missing field as required, without an `undefined` value (qa2-spec #4)', async () => {
    const r = await append({ payload: {} });
    expect(r.body).toMatchObject({ status: 400, code: 'EDBX_ERR_INVALID_ARGUMENT' });
    expect(r.body.detail).toBe('body.event_type is required: send it');
    const inTx = await post(s, '/v1/transactions', { events: [{ aggregate_type: 'patient', payload: {} }] });
    // Named as the event of the transaction it is about, too (qa-schema #3).
    expect(inTx.body.detail).toMatch(/^events\[0\]: body\.events\.0\.\w+ is required: send it$/);
  });

  it('shows the value of a generic argument error, truncated and escaped', async () => {
    const twice = await get(s, '/v1/aggregates?take=2&take=3');
    expect(twice.body.code).toBe('EDBX_ERR_INVALID_ARGUMENT');
    expect(twice.body.detail).toContain('["2","3"]');
    expect(twice.body.detail).toMatch(/once/);

    const long = await append({ event_type: 'added', payload: {}, extra: 'x' });
    expect(long.body.detail).toContain('"extra"');

    const evil = await get(s, `/v1/aggregates?take=${'%22%0A'.repeat(200)}`);
    expect(evil.body.code).toBe('EDBX_ERR_INVALID_ARGUMENT');
    expect(evil.body.detail).not.toContain('\n');
    expect(evil.body.detail).toContain('\\"\\n');
    expect(evil.body.detail.length).toBeLessThan(300);
  });

  it('answers EDBX_ERR_INVALID_VERSION for a version that is not a whole number >= 1', async () => {
    for (const path of [
      '/v1/aggregates/patient/p-1/events/abc',
      '/v1/aggregates/patient/p-1/events/0/proof',
      '/v1/aggregates/patient/p-1?version=0',
    ]) {
      const r = await get(s, path);
      expect({ path, status: r.status, code: r.body.code }).toEqual({
        path,
        status: 400,
        code: 'EDBX_ERR_INVALID_VERSION',
      });
    }
  });
});
