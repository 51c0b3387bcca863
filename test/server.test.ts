import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Project, type RunningServer, api, project, startServer } from './helpers/cli.js';

describe('server: Getting Started and the spec cURL examples', () => {
  let p: Project;
  let server: RunningServer;
  beforeAll(async () => {
    p = await project();
    server = await startServer(p);
  });
  afterAll(async () => {
    await server?.stop();
    await p?.cleanup();
  });

  it('prints a one-time admin token and answers /health without a token', async () => {
    expect(server.adminToken).toMatch(/^edbx_/);
    const h = await api(`${server.url}/health`, undefined);
    expect(h.status).toBe(200);
    expect(h.body).toMatchObject({ status: 'ok', restrict: 'true' });
  });

  it('runs steps 7-8 through the CLI while the server runs, and the curl examples see the result', async () => {
    const gen = await p.cli([
      'token',
      'generate',
      '--group',
      'admin',
      '--user',
      'jane',
      '--expiration',
      '3600',
      '--json',
    ]);
    expect(gen.code).toBe(0);
    const token = JSON.parse(gen.stdout).token.token as string;
    const apply = await p.cli([
      'aggregate',
      'apply',
      '--aggregate',
      'patient',
      '--aggregate-id',
      'p-001',
      '--event',
      'patient-added',
      '--field',
      'name=Jane Doe',
      '--field',
      'status=active',
    ]);
    expect(apply.code).toBe(0);
    expect(apply.stdout).toContain('version 1');

    const list = await api(`${server.url}/v1/aggregates`, token);
    expect(list.status).toBe(200);
    expect(list.body.aggregates).toEqual([
      expect.objectContaining({ aggregate_type: 'patient', aggregate_id: 'p-001', version: 1 }),
    ]);

    const post = await api(`${server.url}/v1/aggregates/patient/p-001/events`, token, {
      body: { event_type: 'patient-updated', payload: { status: 'inactive', comment: 'Archived via API' } },
    });
    expect(post.status).toBe(201);
    expect(post.body).toMatchObject({
      version: 2,
      metadata: { issued_by: { group: 'admin', user: 'jane' } },
    });

    const recent = await api(`${server.url}/v1/aggregates/patient/p-001/events/recent?take=5`, token);
    expect(recent.body.events.map((e: { version: number }) => e.version)).toEqual([2, 1]);

    const state = await api(`${server.url}/v1/aggregates/patient/p-001`, token);
    expect(state.body.state).toEqual({ name: 'Jane Doe', status: 'inactive', comment: 'Archived via API' });
  });

  it('lets group admin manage tokens over HTTP, and no one else', async () => {
    const made = await api(`${server.url}/v1/tokens`, server.adminToken, {
      body: { group: 'doctors', user: 'dr-house', expiration: 600, limit: 2, aggregates: ['patient'] },
    });
    expect(made.status).toBe(201);
    expect(made.body).toMatchObject({
      group: 'doctors',
      user: 'dr-house',
      status: 'active',
      remaining: 2,
      scopes: ['patient'],
    });
    const doctor = made.body.token as string;
    const listed = await api(`${server.url}/v1/tokens`, server.adminToken);
    expect(JSON.stringify(listed.body)).not.toContain(doctor);
    expect(listed.body.tokens.some((t: { id: string }) => t.id === made.body.id)).toBe(true);
    const denied = await api(`${server.url}/v1/tokens`, doctor);
    expect(denied.status).toBe(403);
    expect(denied.body.code).toBe('EDBX_ERR_GROUP_NOT_ALLOWED');
    const refreshed = await api(`${server.url}/v1/tokens/${made.body.id}/refresh`, server.adminToken, {
      body: { limit: 5 },
    });
    expect(refreshed.body.remaining).toBe(5);
    const revoked = await api(`${server.url}/v1/tokens/${made.body.id}/revoke`, server.adminToken, {
      method: 'POST',
    });
    expect(revoked.body.status).toBe('revoked');
    const after = await api(`${server.url}/v1/aggregates`, doctor);
    expect(after.body.code).toBe('EDBX_ERR_TOKEN_REVOKED');
    // The admin's own token is fine: refusals about the target token are 409, not 401.
    const again = await api(`${server.url}/v1/tokens/${made.body.id}/revoke`, server.adminToken, {
      method: 'POST',
    });
    expect([again.status, again.body.code]).toEqual([409, 'EDBX_ERR_TOKEN_ALREADY_REVOKED']);
    const refreshRevoked = await api(`${server.url}/v1/tokens/${made.body.id}/refresh`, server.adminToken, {
      body: { limit: 5 },
    });
    expect([refreshRevoked.status, refreshRevoked.body.code]).toEqual([
      409,
      'EDBX_ERR_TOKEN_ALREADY_REVOKED',
    ]);
    const other = await api(`${server.url}/v1/tokens`, server.adminToken, {
      body: { group: 'doctors', user: 'dr-wilson', limit: 1, expiration: 600 },
    });
    const unknownField = await api(`${server.url}/v1/tokens/${other.body.id}/revoke`, server.adminToken, {
      body: { reason: 'left' },
    });
    expect([unknownField.status, unknownField.body.code]).toEqual([400, 'EDBX_ERR_INVALID_ARGUMENT']);
    expect(unknownField.body.detail).toContain('unknown field "reason"');
    const noFields = await api(`${server.url}/v1/tokens/${other.body.id}/refresh`, server.adminToken, {
      body: {},
    });
    expect(noFields.body.detail).not.toMatch(/--/); // no CLI flags in HTTP messages
    const tx = await api(`${server.url}/v1/transactions`, other.body.token, {
      body: {
        events: [
          { aggregate_type: 'patient', aggregate_id: 'p-7', event_type: 'patient-added', payload: {} },
          { aggregate_type: 'patient', aggregate_id: 'p-7', event_type: 'patient-added', payload: {} },
        ],
      },
    });
    expect([tx.status, tx.body.code]).toEqual([403, 'EDBX_ERR_TOKEN_EXHAUSTED']);
    expect(tx.body.detail).toMatch(/has 1 write left and this request needs 2/);
    const audit = await p.cli(['audit', 'list', '--json']);
    const actions = JSON.parse(audit.stdout).entries.map((e: { event_type: string }) => e.event_type);
    expect(actions).toEqual(expect.arrayContaining(['token-generated', 'token-refreshed', 'token-revoked']));
  });

  it('answers a retried append and transaction of a token whose allowance they used up (qa4-sdk #1)', async () => {
    const issued = await api(`${server.url}/v1/tokens`, server.adminToken, {
      body: { group: 'doctors', user: 'dr-last', limit: 2, expiration: 600 },
    });
    const token = issued.body.token as string;
    const event = { event_type: 'patient-added', payload: { name: 'Ann' }, event_id: 'last-1' };
    const url = `${server.url}/v1/aggregates/patient/p-last/events`;
    const first = await api(url, token, { body: event });
    const txBody = {
      events: [{ aggregate_type: 'patient', aggregate_id: 'p-last2', ...event, event_id: 'last-2' }],
    };
    const tx = await api(`${server.url}/v1/transactions`, token, { body: txBody });
    expect([first.status, tx.status]).toEqual([201, 201]);
    // Both answers were lost; the client retries the identical requests with the spent token.
    const again = await api(url, token, { body: event });
    expect([again.status, again.body]).toEqual([200, first.body]);
    const txAgain = await api(`${server.url}/v1/transactions`, token, { body: txBody });
    expect([txAgain.status, txAgain.body]).toEqual([200, tx.body]);
    const fresh = await api(url, token, { body: { ...event, event_id: 'last-3' } });
    expect([fresh.status, fresh.body.code]).toEqual([403, 'EDBX_ERR_TOKEN_EXHAUSTED']);
    expect(fresh.body.detail).toMatch(/has used its 2 writes/);
    const state = await api(`${server.url}/v1/aggregates/patient/p-last`, token);
    expect(state.body.version).toBe(1);
  });

  it('answers 415 for a body that is not JSON', async () => {
    const r = await api(`${server.url}/v1/aggregates/patient/p-001/events`, server.adminToken, {
      body: 'event_type=x',
      headers: { 'content-type': 'text/plain' },
    });
    expect(r.status).toBe(415);
    expect(r.body.code).toBe('EDBX_ERR_UNSUPPORTED_MEDIA_TYPE');
  });
});
