/**
 * A refused transaction names the event refused (qa-schema #3): `POST /v1/transactions` of up to 1000
 * events is refused whole, and the problem said why but not which event, so the client could not find
 * it. The detail now starts `events[1] (patient/p-031): …` and the problem carries `event` (its index
 * and aggregate), over HTTP and through the SDK; single appends are unchanged.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventDbxClient, isApiError } from '../../src/client/index.js';
import { alterSchema, createSchema, installSchemas } from '../../src/store/schemas.js';
import { createToken } from '../../src/store/tokens.js';
import { type TestServer, post, testServer } from '../helpers/http.js';

const jane = { issuedBy: { group: 'admin', user: 'jane' } };
const ev = (id: string, payload: Record<string, unknown>, more: Record<string, unknown> = {}) => ({
  aggregate_type: 'patient',
  aggregate_id: id,
  event_type: 'patient-added',
  payload,
  ...more,
});

describe('a refused transaction names the event refused (qa-schema #3)', () => {
  let s: TestServer;
  const tx = (events: unknown[], token = s.token) =>
    post(s, '/v1/transactions', { events }, { authorization: `Bearer ${token}` });
  beforeAll(async () => {
    s = await testServer();
    await installSchemas(s.store, 'true');
    await createSchema(s.store, { aggregate: 'patient', events: 'patient-added' }, jane);
    await alterSchema(s.store, 'patient', { event: 'patient-added', add: 'mrn,name,ssn,status' }, jane);
    await alterSchema(s.store, 'patient', { field: 'ssn', lock: true }, jane);
  });
  afterAll(() => s?.close());

  it('a schema refusal: the index and aggregate in the detail and as the problem`s `event`', async () => {
    const r = await tx([
      ev('p-030', { name: 'A' }),
      ev('p-031', { name: 'B', dob: '1990' }),
      ev('p-032', { name: 'C' }),
    ]);
    expect(r.status).toBe(422);
    expect(r.body).toMatchObject({
      code: 'EDBX_ERR_FIELD_NOT_PERMITTED',
      event: { index: 1, aggregate_type: 'patient', aggregate_id: 'p-031' },
    });
    expect(r.body.detail).toBe(
      'events[1] (patient/p-031): event "patient-added" of aggregate "patient" may not set field "dob": permitted fields are mrn, name, status',
    );
    // Nothing was written.
    expect((await tx([ev('p-030', { name: 'A' }, { expected_version: 0 })])).status).toBe(201);
  });

  it.each([
    // The store's checks: locks, field names, expected versions, repeated event ids.
    {
      code: 'EDBX_ERR_FIELD_LOCKED',
      index: 1,
      events: [ev('p-040', { name: 'A' }), ev('p-041', { ssn: '1' })],
    },
    { code: 'EDBX_ERR_INVALID_FIELD_NAME', index: 0, events: [ev('p-042', { 'na\u200bme': 'A' })] },
    {
      code: 'EDBX_ERR_VERSION_CONFLICT',
      index: 1,
      events: [ev('p-043', { name: 'A' }), ev('p-030', { name: 'A' }, { expected_version: 0 })],
    },
    {
      code: 'EDBX_ERR_DUPLICATE_EVENT_ID',
      index: 1,
      events: [
        ev('p-044', { name: 'A' }, { event_id: 'x1' }),
        ev('p-045', { name: 'B' }, { event_id: 'x1' }),
      ],
    },
    // The body's validation: a null value (the finding's EDBX_ERR_INVALID_FIELD_VALUE).
    {
      code: 'EDBX_ERR_INVALID_FIELD_VALUE',
      index: 2,
      events: [ev('p-046', { name: 'A' }), ev('p-047', { name: 'B' }), ev('p-048', { name: null })],
    },
  ])('$code: events[$index] is named', async ({ events, code, index }) => {
    const r = await tx(events);
    const sent = events[index]!;
    expect(r.body).toMatchObject({
      code,
      event: { index, aggregate_type: sent.aggregate_type, aggregate_id: sent.aggregate_id },
    });
    expect(r.body.detail).toMatch(new RegExp(`^events\\[${index}\\] \\(patient/${sent.aggregate_id}\\): `));
  });

  it('an event whose aggregate names are wrong is named by its index alone', async () => {
    const badId = await tx([ev('p-050', { name: 'A' }), ev(' p-051', { name: 'B' })]);
    expect(badId.body).toMatchObject({ code: 'EDBX_ERR_INVALID_AGGREGATE_ID', event: { index: 1 } });
    expect(badId.body.event).toEqual({ index: 1 });
    expect(badId.body.detail).toMatch(/^events\[1\]: invalid aggregate id " p-051": /);
    const missing = await tx([
      ev('p-052', { name: 'A' }),
      { aggregate_type: 'patient', event_type: 'x', payload: {} },
    ]);
    expect(missing.body).toMatchObject({ code: 'EDBX_ERR_INVALID_ARGUMENT', event: { index: 1 } });
    expect(missing.body.detail).toBe('events[1]: body.events.1.aggregate_id is required: send it');
  });

  it('a refusal of the token scope names the event; one of the token itself does not', async () => {
    const scoped = await createToken(
      s.store,
      { group: 'doctors', user: 'dr', expiration: 3600, scopes: ['patient/p-060'] },
      jane,
    );
    const out = await tx([ev('p-060', { name: 'A' }), ev('p-061', { name: 'B' })], scoped.token);
    expect(out.body).toMatchObject({ code: 'EDBX_ERR_TOKEN_OUT_OF_SCOPE', event: { index: 1 } });
    expect(out.body.detail).toMatch(/^events\[1\] \(patient\/p-061\): /);
    const reader = await createToken(
      s.store,
      { group: 'doctors', user: 'ro', expiration: 3600, readOnly: true },
      jane,
    );
    const ro = await tx([ev('p-062', { name: 'A' })], reader.token);
    expect(ro.body.code).toBe('EDBX_ERR_TOKEN_READ_ONLY');
    expect(ro.body.event).toBeUndefined();
    expect(ro.body.detail).not.toMatch(/^events\[/);
  });

  it('a single append is not named as an event of a transaction', async () => {
    const r = await post(s, '/v1/aggregates/patient/p-070/events', {
      event_type: 'patient-added',
      payload: { dob: '1' },
    });
    expect(r.body.code).toBe('EDBX_ERR_FIELD_NOT_PERMITTED');
    expect(r.body.event).toBeUndefined();
    expect(r.body.detail).toMatch(/^event "patient-added" of aggregate "patient" may not set field "dob"/);
  });

  it('the SDK`s transaction error carries the event in its problem and message', async () => {
    const db = new EventDbxClient({ url: s.url, token: s.token });
    const e = await db
      .transaction([ev('p-080', { name: 'A' }), ev('p-081', { ssn: '1' })] as never)
      .catch((x: unknown) => x);
    expect(isApiError(e, 'EDBX_ERR_FIELD_LOCKED')).toBe(true);
    if (!isApiError(e)) return;
    expect(e.problem.event).toEqual({ index: 1, aggregate_type: 'patient', aggregate_id: 'p-081' });
    expect(e.message).toMatch(/^EDBX_ERR_FIELD_LOCKED: events\[1\] \(patient\/p-081\): /);
  });
});
