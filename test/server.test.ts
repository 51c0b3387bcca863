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
});
