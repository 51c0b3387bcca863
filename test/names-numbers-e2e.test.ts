/**
 * The repros of qa-schema #1, #5-#8 and qa-spec #4 through the real server and CLI: a field name not in
 * NFC no longer passes a lock; JSON lists of names are not trimmed silently; a declared field with a
 * comma is refused over HTTP as the CLI could never name it; threshold 0 is recorded as no automatic
 * snapshots; numbers beyond 2^53−1 are quoted with the digits sent and the bound; a NUL is named.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Project, type RunningServer, api, applyArgs, project, startServer } from './helpers/cli.js';

const MAX = '9007199254740991';

describe('names and numbers through the server and the CLI (qa-schema #1, #5-#8, qa-spec #4)', () => {
  let p: Project;
  let server: RunningServer;
  const schemas = () => `${server.url}/v1/schemas`;
  const events = (id: string) => `${server.url}/v1/aggregates/patient/${encodeURIComponent(id)}/events`;
  beforeAll(async () => {
    p = await project();
    server = await startServer(p);
    for (const args of [
      ['schema', 'create', '--aggregate', 'patient', '--events', 'patient-added'],
      ['schema', 'alter', 'patient', '--field', 'diagnóstico', '--lock', 'true'],
    ]) {
      const r = await p.cli(args);
      if (r.code !== 0) throw new Error(r.stderr);
    }
  });
  afterAll(async () => {
    await server?.stop();
    await p?.cleanup();
  });

  it('refuses a locked field sent decomposed (NFD), over HTTP and from the CLI (qa-schema #1)', async () => {
    const nfc = await api(events('p-3'), server.adminToken, {
      body: { event_type: 'patient-added', payload: { diagnóstico: 'HIV+' } },
    });
    expect([nfc.status, nfc.body.code]).toEqual([403, 'EDBX_ERR_FIELD_LOCKED']);
    // Sent as JSON escapes, as the QA repro did: the bytes are `o` + U+0301.
    const nfd = await api(events('p-3'), server.adminToken, {
      body: '{"event_type":"patient-added","payload":{"diagno\\u0301stico":"HIV+"}}',
    });
    expect([nfd.status, nfd.body.code]).toEqual([400, 'EDBX_ERR_INVALID_FIELD_NAME']);
    expect(nfd.body.detail).toMatch(/it is not in Unicode NFC \(U\+006F U\+0301 is U\+00F3 in NFC\)/);
    expect(nfd.body.detail).toMatch(/send the name in NFC$/);
    const cli = await p.cli(applyArgs('patient', 'p-3', 'patient-added', ['diagno\u0301stico=HIV+']));
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/not in Unicode NFC.*\[EDBX_ERR_INVALID_FIELD_NAME\]/);
    const lock = await p.cli([
      'schema',
      'alter',
      'patient',
      '--field',
      'diagno\u0301stico',
      '--lock',
      'true',
    ]);
    expect(lock.stderr).toContain('EDBX_ERR_INVALID_FIELD_NAME');
    const none = await api(`${server.url}/v1/aggregates/patient/p-3`, server.adminToken);
    expect(none.body.code).toBe('EDBX_ERR_AGGREGATE_NOT_FOUND');
    const id = await api(events('jose\u0301'), server.adminToken, {
      body: { event_type: 'patient-added', payload: {} },
    });
    expect([id.status, id.body.code]).toEqual([400, 'EDBX_ERR_INVALID_AGGREGATE_ID']);
  });

  it('refuses names in JSON lists with spaces at either end instead of trimming them (qa-schema #5)', async () => {
    const add = await api(`${schemas()}/patient`, server.adminToken, {
      method: 'PATCH',
      body: { event: 'patient-added', add: ['a b '] },
    });
    expect([add.status, add.body.code]).toEqual([400, 'EDBX_ERR_INVALID_FIELD_NAME']);
    expect(add.body.detail).toMatch(/"a b ": it starts or ends with a space/);
    const create = await api(schemas(), server.adminToken, {
      body: { aggregate: 'imaging2', events: [' scan-done '] },
    });
    expect([create.status, create.body.code]).toEqual([400, 'EDBX_ERR_INVALID_EVENT_TYPE']);
    const more = await api(`${schemas()}/patient/events`, server.adminToken, {
      body: { events: ['patient-updated '] },
    });
    expect([more.status, more.body.code]).toEqual([400, 'EDBX_ERR_INVALID_EVENT_TYPE']);
    // The CLI's comma lists are still split and trimmed.
    const cli = await p.cli([
      'schema',
      'alter',
      'patient',
      '--event',
      'patient-added',
      '--add',
      'name, status',
    ]);
    expect(cli.code, cli.stderr).toBe(0);
    const shown = await api(`${schemas()}/patient`, server.adminToken);
    expect(shown.body.events['patient-added'].fields).toEqual(['name', 'status']);
    expect((await api(`${schemas()}/imaging2`, server.adminToken)).body.code).toBe(
      'EDBX_ERR_SCHEMA_NOT_FOUND',
    );
  });

  it('refuses a declared field holding a comma over HTTP, as no CLI list could name it (qa-schema #6)', async () => {
    const r = await api(`${schemas()}/patient`, server.adminToken, {
      method: 'PATCH',
      body: { event: 'patient-added', add: ['p,q'] },
    });
    expect([r.status, r.body.code]).toEqual([400, 'EDBX_ERR_INVALID_FIELD_NAME']);
    expect(r.body.detail).toMatch(/^invalid field name "p,q": a field a schema declares cannot hold a comma/);
    expect(r.body.detail).not.toMatch(/--/); // no CLI flags in HTTP messages
    const shown = await api(`${schemas()}/patient`, server.adminToken);
    expect(shown.body.events['patient-added'].fields).toEqual(['name', 'status']);
  });

  it('records threshold 0 as "no automatic snapshots", from the CLI and over HTTP (qa-schema #7)', async () => {
    const cli = await p.cli([
      'schema',
      'create',
      '--aggregate',
      'x3',
      '--events',
      'a',
      '--snapshot-threshold',
      '0',
      '--json',
    ]);
    expect(cli.code, cli.stderr).toBe(0);
    expect(JSON.parse(cli.stdout).schema.change).toBe('created with events a; no automatic snapshots');
    const http = await api(schemas(), server.adminToken, {
      body: { aggregate: 'x4', events: ['a'], snapshot_threshold: 0 },
    });
    expect([http.status, http.body.change]).toEqual([201, 'created with events a; no automatic snapshots']);
    const audit = await p.cli(['audit', 'list']);
    expect(audit.stdout).toContain('change=created with events a; no automatic snapshots');
    expect(audit.stdout).not.toContain('every 0 events');
  });

  it('quotes a number beyond 2^53−1 as sent and gives the bound (qa-schema #8, qa-spec #4)', async () => {
    for (const digits of ['9007199254740993', '18446744073709551615']) {
      const create = await api(schemas(), server.adminToken, {
        body: `{"aggregate":"zz","events":["a"],"snapshot_threshold":${digits}}`,
      });
      expect([create.status, create.body.code]).toEqual([400, 'EDBX_ERR_INVALID_SNAPSHOT_THRESHOLD']);
      expect(create.body.detail).toBe(
        `invalid snapshot threshold ${digits}: use a whole number of events from 0 to ${MAX} (0 = no automatic snapshots)`,
      );
      const alter = await api(`${schemas()}/patient`, server.adminToken, {
        method: 'PATCH',
        body: `{"snapshot_threshold":${digits}}`,
      });
      expect(alter.body.detail).toBe(create.body.detail);
      const expected = await api(events('p-9'), server.adminToken, {
        body: `{"event_type":"patient-added","payload":{},"expected_version":${digits}}`,
      });
      expect([expected.status, expected.body.code]).toEqual([400, 'EDBX_ERR_INVALID_EXPECTED_VERSION']);
      expect(expected.body.detail).toBe(
        `invalid expected version ${digits}: use a whole number from 0 to ${MAX} (0 = the aggregate must not exist)`,
      );
      const limit = await api(`${server.url}/v1/tokens`, server.adminToken, {
        body: `{"group":"doctors","user":"dr-x","expiration":3600,"limit":${digits}}`,
      });
      expect([limit.status, limit.body.code]).toEqual([400, 'EDBX_ERR_INVALID_ARGUMENT']);
      expect(limit.body.detail).toBe(`invalid body.limit ${digits}: use a whole number from 1 to ${MAX}`);
    }
    expect((await api(`${schemas()}/zz`, server.adminToken)).body.code).toBe('EDBX_ERR_SCHEMA_NOT_FOUND');
    // A payload keeps its numbers' digits, as before.
    const kept = await api(events('p-9'), server.adminToken, {
      body: '{"event_type":"patient-added","payload":{"name":18446744073709551615}}',
    });
    expect([kept.status, kept.body.payload]).toEqual([201, { name: '18446744073709551615' }]);
  });

  it('CLI range messages give the upper bound (qa-spec #4)', async () => {
    const big = '18446744073709551615';
    const cases: Array<[string[], string]> = [
      [
        ['schema', 'alter', 'patient', '--snapshot-threshold', big],
        `invalid snapshot threshold "${big}": use a whole number of events from 0 to ${MAX}`,
      ],
      [
        ['aggregate', 'get', '--aggregate', 'patient', '--aggregate-id', 'p-9', '--version', big],
        `invalid version "${big}": use a whole number from 1 to ${MAX}`,
      ],
      [
        ['aggregate', 'replay', '--aggregate', 'patient', '--aggregate-id', 'p-9', '--skip', big],
        `invalid --skip "${big}": use a whole number from 0 to ${MAX}`,
      ],
      [['aggregate', 'list', '--take', big], `invalid --take "${big}": use a whole number from 0 to ${MAX}`],
    ];
    for (const [args, says] of cases) {
      const r = await p.cli(args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr).toContain(says);
    }
  });

  it('says a value holding a NUL must lose it (qa-schema #8)', async () => {
    const r = await api(events('p-10'), server.adminToken, {
      body: '{"event_type":"patient-added","payload":{"name":"a\\u0000b"}}',
    });
    expect([r.status, r.body.code]).toEqual([400, 'EDBX_ERR_INVALID_FIELD_VALUE']);
    expect(r.body.detail).toBe(
      'field "name" holds a NUL character (U+0000): remove it (payload values are text without NUL)',
    );
  });
});
