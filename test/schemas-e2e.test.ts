/**
 * Schemas and restricted mode end to end (issue 5): the real CLI without a server, the CLI while a
 * server runs (a change applies to the very next POST), the REST endpoints, and the three modes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Project, type RunningServer, api, applyArgs, project, startServer } from './helpers/cli.js';

const errorCode = (stderr: string): string | undefined => /\[(EDBX_ERR_[A-Z_]+)\]/.exec(stderr)?.[1];

async function json(p: Project, args: string[]): Promise<any> {
  const r = await p.cli([...args, '--json']);
  if (r.code !== 0) throw new Error(`${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout);
}

async function expectCliError(p: Project, args: string[], code: string, exit = 1): Promise<string> {
  const r = await p.cli(args);
  expect({ exit: r.code, code: errorCode(r.stderr) }).toEqual({ exit, code });
  return r.stderr;
}

describe('schema commands without a server', () => {
  let p: Project;
  beforeAll(async () => {
    p = await project();
  });
  afterAll(async () => {
    await p?.cleanup();
  });

  it('runs Getting Started step 6 then step 8, and every command edits the stored schema', async () => {
    const created = await json(p, [
      'schema',
      'create',
      '--aggregate',
      'patient',
      '--events',
      'patient-added,patient-updated',
      '--snapshot-threshold',
      '100',
    ]);
    expect(created.schema).toMatchObject({
      aggregate: 'patient',
      version: 1,
      snapshot_threshold: 100,
      events: { 'patient-added': { fields: [] }, 'patient-updated': { fields: [] } },
    });
    const step8 = await p.cli(
      applyArgs('patient', 'p-001', 'patient-added', ['name=Jane Doe', 'status=active']),
    );
    expect(step8.code).toBe(0);

    await json(p, ['schema', 'add', '--aggregate', 'patient', '--events', 'patient-discharged']);
    const altered = await json(p, [
      'schema',
      'alter',
      'patient',
      '--event',
      'patient-added',
      '--add',
      'name,status',
    ]);
    expect(altered.schema.events['patient-added']).toEqual({ fields: ['name', 'status'] });
    const removed = await json(p, [
      'schema',
      'remove',
      '--aggregate',
      'patient',
      '--event',
      'patient-discharged',
    ]);
    expect(Object.keys(removed.schema.events)).toEqual(['patient-added', 'patient-updated']);

    const list = await json(p, ['schema', 'list']);
    expect(list.schemas.map((s: { aggregate: string; version: number }) => [s.aggregate, s.version])).toEqual(
      [['patient', 4]],
    );
    const show = await json(p, ['schema', 'show', '--aggregate', 'patient', '--history']);
    expect(show.schema.version).toBe(4);
    expect(show.history.map((h: { change: string }) => h.change)).toEqual([
      'created with events patient-added, patient-updated; snapshot every 100 events',
      'added events patient-discharged',
      'event patient-added: added fields name, status',
      'removed event patient-discharged',
    ]);
    const human = await p.cli(['schema', 'show', '--aggregate', 'patient']);
    expect(human.stdout).toMatch(/patient-added\s+name, status/);
    expect(human.stdout).toMatch(/patient-updated\s+\(any\)/);

    const audit = await json(p, ['audit', 'list']);
    expect(
      audit.entries
        .map((e: { event_type: string }) => e.event_type)
        .filter((t: string) => t.startsWith('schema-')),
    ).toEqual(['schema-created', 'schema-events-added', 'schema-altered', 'schema-event-removed']);
  });

  it('refuses appends the schema forbids, naming aggregate, event and field (exit 1, nothing written)', async () => {
    const notPermitted = await expectCliError(
      p,
      applyArgs('patient', 'p-002', 'patient-added', ['name=Bob', 'ssn=123']),
      'EDBX_ERR_FIELD_NOT_PERMITTED',
    );
    expect(notPermitted).toContain('"ssn"');
    expect(notPermitted).toContain('"patient-added"');
    expect(notPermitted).toContain('permitted fields are name, status');
    const unknown = await expectCliError(
      p,
      applyArgs('patient', 'p-002', 'patient-deleted'),
      'EDBX_ERR_EVENT_NOT_IN_SCHEMA',
    );
    expect(unknown).toContain('"patient"');
    await expectCliError(
      p,
      ['aggregate', 'get', '--aggregate', 'patient', '--aggregate-id', 'p-002'],
      'EDBX_ERR_AGGREGATE_NOT_FOUND',
    );

    await json(p, ['schema', 'alter', 'patient', '--field', 'status', '--lock', 'true']);
    await expectCliError(
      p,
      applyArgs('patient', 'p-001', 'patient-updated', ['status=gone']),
      'EDBX_ERR_FIELD_LOCKED',
    );
    await json(p, ['schema', 'alter', 'patient', '--lock', 'true']);
    await expectCliError(p, applyArgs('patient', 'p-001', 'patient-updated'), 'EDBX_ERR_AGGREGATE_LOCKED');
    await json(p, ['schema', 'alter', 'patient', '--lock', 'false']);
    expect((await p.cli(applyArgs('patient', 'p-001', 'patient-updated', ['note=x']))).code).toBe(0);
    // Aggregates without a schema are not validated in the default mode.
    expect((await p.cli(applyArgs('visit', 'v-1', 'anything', ['x=1']))).code).toBe(0);
  });

  it('gives clear coded errors for bad schema commands', async () => {
    await expectCliError(
      p,
      ['schema', 'create', '--aggregate', 'patient', '--events', 'x'],
      'EDBX_ERR_SCHEMA_EXISTS',
    );
    await expectCliError(
      p,
      ['schema', 'add', '--aggregate', 'patient', '--events', 'patient-added'],
      'EDBX_ERR_SCHEMA_EVENT_EXISTS',
    );
    await expectCliError(
      p,
      ['schema', 'remove', '--aggregate', 'patient', '--event', 'patient-deleted'],
      'EDBX_ERR_SCHEMA_EVENT_NOT_FOUND',
    );
    await expectCliError(
      p,
      ['schema', 'create', '--aggregate', 'lab', '--events', 'a', '--snapshot-threshold', 'ten'],
      'EDBX_ERR_INVALID_SNAPSHOT_THRESHOLD',
    );
    await expectCliError(
      p,
      ['schema', 'create', '--aggregate', 'Lab!', '--events', 'a'],
      'EDBX_ERR_INVALID_AGGREGATE_TYPE',
    );
    await expectCliError(
      p,
      ['schema', 'create', '--aggregate', 'lab', '--events', 'ok,Not-OK'],
      'EDBX_ERR_INVALID_EVENT_TYPE',
    );
    await json(p, ['schema', 'create', '--aggregate', 'lab', '--events', 'only']);
    await expectCliError(
      p,
      ['schema', 'remove', '--aggregate', 'lab', '--event', 'only'],
      'EDBX_ERR_SCHEMA_LAST_EVENT',
    );
    await expectCliError(p, ['schema', 'show', '--aggregate', 'nope'], 'EDBX_ERR_SCHEMA_NOT_FOUND');
    await expectCliError(p, ['schema', 'alter', 'lab', '--event', 'only'], 'EDBX_ERR_USAGE', 2);
    await expectCliError(p, ['schema', 'alter', 'lab', '--lock', 'maybe'], 'EDBX_ERR_INVALID_ARGUMENT');
    const missing = await p.cli(['schema', 'alter']);
    expect(missing.code).toBe(2);
  });
});

// The tests of this block run in order on one server and build on each other's schemas.
describe('schemas with a server running (--restrict, the default)', () => {
  let p: Project;
  let server: RunningServer;
  let doctor: string;
  const post = (id: string, event_type: string, payload: Record<string, string>, token = server.adminToken) =>
    api(`${server.url}/v1/aggregates/patient/${id}/events`, token, { body: { event_type, payload } });

  beforeAll(async () => {
    p = await project();
    server = await startServer(p);
    doctor = (await json(p, ['token', 'generate', '--group', 'doctors', '--user', 'bob'])).token.token;
  });
  afterAll(async () => {
    await server?.stop();
    await p?.cleanup();
  });

  it('reports the mode, and a CLI change applies to the very next POST', async () => {
    expect((await api(`${server.url}/health`, undefined)).body.restrict).toBe('true');
    expect((await json(p, ['status'])).restrict).toBe('true');
    expect((await post('p-1', 'patient-added', { name: 'Jane' })).status).toBe(201);

    await json(p, ['schema', 'create', '--aggregate', 'patient', '--events', 'patient-added']);
    const unknown = await post('p-1', 'patient-updated', {});
    expect(unknown.status).toBe(422);
    expect(unknown.body.code).toBe('EDBX_ERR_EVENT_NOT_IN_SCHEMA');
    expect(unknown.headers.get('content-type')).toContain('application/problem+json');

    await json(p, ['schema', 'alter', 'patient', '--event', 'patient-added', '--add', 'name,status']);
    const field = await post('p-1', 'patient-added', { name: 'Jane', ssn: '1' });
    expect(field.status).toBe(422);
    expect(field.body).toMatchObject({ code: 'EDBX_ERR_FIELD_NOT_PERMITTED' });
    expect(field.body.detail).toContain('permitted fields are name, status');

    await json(p, ['schema', 'alter', 'patient', '--field', 'status', '--lock', 'true']);
    const locked = await post('p-1', 'patient-added', { status: 'x' });
    expect([locked.status, locked.body.code]).toEqual([403, 'EDBX_ERR_FIELD_LOCKED']);

    await json(p, ['schema', 'alter', 'patient', '--lock', 'true']);
    const all = await post('p-1', 'patient-added', { name: 'x' });
    expect([all.status, all.body.code]).toEqual([403, 'EDBX_ERR_AGGREGATE_LOCKED']);
    await json(p, ['schema', 'alter', 'patient', '--lock', 'false']);
    expect((await post('p-1', 'patient-added', { name: 'x' })).status).toBe(201);

    const events = await api(`${server.url}/v1/aggregates/patient/p-1/events`, server.adminToken);
    expect(events.body.events.map((e: { version: number }) => e.version)).toEqual([1, 2]);
  });

  it('serves GET /v1/schemas and /v1/schemas/{aggregate} to any valid token', async () => {
    const list = await api(`${server.url}/v1/schemas`, doctor);
    expect(list.status).toBe(200);
    expect(list.body.schemas).toEqual([
      expect.objectContaining({
        aggregate: 'patient',
        events: { 'patient-added': { fields: ['name', 'status'] } },
        locked: false,
        locked_fields: ['status'],
      }),
    ]);
    const one = await api(`${server.url}/v1/schemas/patient`, doctor);
    expect(one.body).toEqual(list.body.schemas[0]);
    const history = await api(`${server.url}/v1/schemas/patient/history`, doctor);
    expect(history.body.versions.map((v: { version: number }) => v.version)).toEqual([1, 2, 3, 4, 5]);
    const missing = await api(`${server.url}/v1/schemas/visit`, doctor);
    expect([missing.status, missing.body.code]).toEqual([404, 'EDBX_ERR_SCHEMA_NOT_FOUND']);
    expect((await api(`${server.url}/v1/schemas`, undefined)).status).toBe(401);
  });

  it('offers admin-only POST/PATCH/DELETE equivalents whose changes apply to the next request', async () => {
    const base = `${server.url}/v1/schemas`;
    const refused = await api(base, doctor, { body: { aggregate: 'visit', events: ['visit-booked'] } });
    expect([refused.status, refused.body.code]).toEqual([403, 'EDBX_ERR_GROUP_NOT_ALLOWED']);
    const patchRefused = await api(`${base}/patient`, doctor, { method: 'PATCH', body: { lock: true } });
    expect(patchRefused.status).toBe(403);

    const created = await api(base, server.adminToken, {
      body: { aggregate: 'visit', events: ['visit-booked'], snapshot_threshold: 2 },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ aggregate: 'visit', version: 1, snapshot_threshold: 2 });
    const visit = (event_type: string, payload: Record<string, string>) =>
      api(`${server.url}/v1/aggregates/visit/v-1/events`, server.adminToken, {
        body: { event_type, payload },
      });
    expect((await visit('visit-cancelled', {})).status).toBe(422);

    const added = await api(`${base}/visit/events`, server.adminToken, {
      body: { events: ['visit-cancelled'] },
    });
    expect(added.status).toBe(200);
    expect((await visit('visit-cancelled', {})).status).toBe(201);

    const patched = await api(`${base}/visit`, server.adminToken, {
      method: 'PATCH',
      body: { event: 'visit-booked', add: ['room'] },
    });
    expect(patched.body.events['visit-booked']).toEqual({ fields: ['room'] });
    expect((await visit('visit-booked', { room: '1', doctor: 'x' })).body.code).toBe(
      'EDBX_ERR_FIELD_NOT_PERMITTED',
    );
    expect((await visit('visit-booked', { room: '1' })).status).toBe(201);

    const deleted = await api(`${base}/visit/events/visit-cancelled`, server.adminToken, {
      method: 'DELETE',
    });
    expect(Object.keys(deleted.body.events)).toEqual(['visit-booked']);
    expect((await visit('visit-cancelled', {})).body.code).toBe('EDBX_ERR_EVENT_NOT_IN_SCHEMA');

    // The CLI (through the server) sees what REST did, and vice versa.
    const shown = await json(p, ['schema', 'show', '--aggregate', 'visit']);
    expect(shown.schema.version).toBe(4);

    const errors = [
      [
        await api(base, server.adminToken, { body: { aggregate: 'visit', events: ['x'] } }),
        409,
        'EDBX_ERR_SCHEMA_EXISTS',
      ],
      [
        await api(`${base}/visit/events`, server.adminToken, { body: { events: ['visit-booked'] } }),
        409,
        'EDBX_ERR_SCHEMA_EVENT_EXISTS',
      ],
      [
        await api(`${base}/visit/events/visit-booked`, server.adminToken, { method: 'DELETE' }),
        409,
        'EDBX_ERR_SCHEMA_LAST_EVENT',
      ],
      [
        await api(`${base}/visit`, server.adminToken, {
          method: 'PATCH',
          body: { snapshot_threshold: 'abc' },
        }),
        400,
        'EDBX_ERR_INVALID_SNAPSHOT_THRESHOLD',
      ],
      // A number in a string is not silently read as the number.
      [
        await api(`${base}/visit`, server.adminToken, { method: 'PATCH', body: { snapshot_threshold: '5' } }),
        400,
        'EDBX_ERR_INVALID_SNAPSHOT_THRESHOLD',
      ],
      [
        await api(`${base}/visit`, server.adminToken, { method: 'PATCH', body: { colour: 'red' } }),
        400,
        'EDBX_ERR_INVALID_ARGUMENT',
      ],
      [
        await api(base, server.adminToken, { body: { aggregate: 'Bad Name', events: ['a'] } }),
        400,
        'EDBX_ERR_INVALID_AGGREGATE_TYPE',
      ],
      [
        await api(`${base}/nope/events`, server.adminToken, { body: { events: ['a'] } }),
        404,
        'EDBX_ERR_SCHEMA_NOT_FOUND',
      ],
    ] as const;
    for (const [res, status, code] of errors) expect([res.status, res.body.code]).toEqual([status, code]);
  });

  it('never lets through an event the new schema forbids once the change is acknowledged', async () => {
    await json(p, ['schema', 'create', '--aggregate', 'ward', '--events', 'ward-updated']);
    let acked = false;
    let stop = false;
    const sent: Array<{ afterAck: boolean; status: number; code?: string }> = [];
    const client = async (c: number) => {
      for (let i = 0; !stop; i++) {
        const afterAck = acked;
        const r = await api(`${server.url}/v1/aggregates/ward/w-${c}/events`, server.adminToken, {
          body: { event_type: 'ward-updated', payload: { secret: 's', n: String(i) } },
        });
        sent.push({ afterAck, status: r.status, code: r.body.code });
        if (sent.filter((s) => s.afterAck).length >= 40) stop = true;
      }
    };
    const clients = Array.from({ length: 4 }, (_, c) => client(c));
    while (sent.filter((s) => s.status === 201).length < 20) await new Promise((r) => setTimeout(r, 10));
    await json(p, ['schema', 'alter', 'ward', '--field', 'secret', '--lock', 'true']);
    acked = true;
    await Promise.all(clients);

    const after = sent.filter((s) => s.afterAck);
    expect(after.length).toBeGreaterThanOrEqual(40);
    expect(after.filter((s) => s.status !== 403 || s.code !== 'EDBX_ERR_FIELD_LOCKED')).toEqual([]);
    const audit = await json(p, ['audit', 'list']);
    const change = audit.entries.find(
      (e: { payload: Record<string, string> }) =>
        e.payload.aggregate === 'ward' && e.payload.change === 'locked field secret',
    );
    const late = [];
    for (let c = 0; c < 4; c++) {
      const r = await api(`${server.url}/v1/aggregates/ward/w-${c}/events?take=1000`, server.adminToken);
      for (const e of r.body.events ?? []) if (e.position > change.position) late.push(e);
    }
    expect(late).toEqual([]);
  });
});

describe('restrict modes of the server', () => {
  let p: Project;
  let server: RunningServer | undefined;
  beforeAll(async () => {
    p = await project();
  });
  afterAll(async () => {
    await server?.stop();
    await p?.cleanup();
  });

  it('--restrict=strict refuses aggregates without a schema; --restrict=false validates nothing', async () => {
    // The bootstrap admin token is printed by the first start only; the second start reuses it.
    await json(p, ['schema', 'create', '--aggregate', 'patient', '--events', 'patient-added']);
    await json(p, ['schema', 'alter', 'patient', '--lock', 'true']);

    server = await startServer(p, ['--restrict=strict']);
    expect((await api(`${server.url}/health`, undefined)).body.restrict).toBe('strict');
    expect((await json(p, ['status'])).restrict).toBe('strict');
    const none = await api(`${server.url}/v1/aggregates/visit/v-1/events`, server.adminToken, {
      body: { event_type: 'visit-booked', payload: {} },
    });
    expect([none.status, none.body.code]).toEqual([422, 'EDBX_ERR_SCHEMA_REQUIRED']);
    expect(none.body.detail).toContain('"visit"');
    const locked = await api(`${server.url}/v1/aggregates/patient/p-1/events`, server.adminToken, {
      body: { event_type: 'patient-added', payload: {} },
    });
    expect(locked.status).toBe(403);
    await json(p, ['schema', 'create', '--aggregate', 'visit', '--events', 'visit-booked']);
    const ok = await api(`${server.url}/v1/aggregates/visit/v-1/events`, server.adminToken, {
      body: { event_type: 'visit-booked', payload: {} },
    });
    expect(ok.status).toBe(201);
    await server.stop();

    const admin = server.adminToken;
    server = await startServer(p, ['--restrict=false']);
    expect((await api(`${server.url}/health`, undefined)).body.restrict).toBe('false');
    const free = await api(`${server.url}/v1/aggregates/patient/p-1/events`, admin, {
      body: { event_type: 'anything', payload: { any: 'field' } },
    });
    expect(free.status).toBe(201);
    expect((await api(`${server.url}/v1/schemas/patient`, admin)).body.locked).toBe(true);
  });
});
