import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventDbxClient, isApiError } from '../../src/client/index.js';
import { type Project, type RunningServer, project, startServer } from '../helpers/cli.js';

describe('client SDK: token management (group admin)', () => {
  let p: Project;
  let server: RunningServer;
  let admin: EventDbxClient;
  beforeAll(async () => {
    p = await project();
    server = await startServer(p, ['--restrict=false']);
    admin = new EventDbxClient({ url: server.url, token: server.adminToken });
  });
  afterAll(async () => {
    await server?.stop();
    await p?.cleanup();
  });

  it('issues a scoped token whose writes are recorded as its person, refreshes and revokes it', async () => {
    const issued = await admin.createToken({
      group: 'doctors',
      user: 'dr-grey',
      limit: 1,
      aggregates: ['patient/p-9'],
    });
    expect(issued).toMatchObject({
      group: 'doctors',
      user: 'dr-grey',
      status: 'active',
      remaining: 1,
      scopes: ['patient/p-9'],
    });
    const doctor = new EventDbxClient({ url: server.url, token: issued.token });
    await expect(doctor.append('patient', 'p-1', { event_type: 'seen', payload: {} })).rejects.toSatisfy(
      (x: unknown) => isApiError(x, 'EDBX_ERR_TOKEN_OUT_OF_SCOPE'),
    );
    const e = await doctor.append('patient', 'p-9', { event_type: 'seen', payload: { by: 'grey' } });
    expect(e.metadata.issued_by).toEqual({ group: 'doctors', user: 'dr-grey' });
    await expect(doctor.append('patient', 'p-9', { event_type: 'seen', payload: {} })).rejects.toSatisfy(
      (x: unknown) => isApiError(x, 'EDBX_ERR_TOKEN_EXHAUSTED'),
    );
    await expect(doctor.listTokens()).rejects.toSatisfy((x: unknown) =>
      isApiError(x, 'EDBX_ERR_GROUP_NOT_ALLOWED'),
    );
    expect((await admin.refreshToken(issued.id, { limit: 3 })).remaining).toBe(3);
    expect((await admin.revokeToken(issued.id)).status).toBe('revoked');
    const listed = (await admin.listTokens()).tokens;
    expect(listed.find((t) => t.id === issued.id)?.status).toBe('revoked');
    expect(JSON.stringify(listed)).not.toContain(issued.token);
  });

  it('refuses tokens for group local over the SDK and the CLI: it is reserved (QA-comp #6)', async () => {
    for (const user of ['root', 'bootstrap'])
      await expect(admin.createToken({ group: 'local', user })).rejects.toSatisfy(
        (x: unknown) => isApiError(x, 'EDBX_ERR_GROUP_RESERVED') && x.status === 400,
      );
    const cli = await p.cli(['token', 'generate', '--group', 'local', '--user', 'root']);
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toContain('reserved for writes made on the host without a token');
    expect((await admin.listTokens()).tokens.map((t) => t.group)).not.toContain('local');
  });
});
