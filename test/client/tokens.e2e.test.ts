import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventDbxClient, isApiError } from '../../src/client/index.js';
import { proofOfKeys } from '../../src/cli/runtime.js';
import { loadConfig } from '../../src/config/config.js';
import type { EventRecord, IssuedBy } from '../../src/core/event.js';
import { callControl } from '../../src/server/control.js';
import { type Project, type RunningServer, applyArgs, project, startServer } from '../helpers/cli.js';

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
    // The one-time admin token expires (24 h): what it issues must expire no later (pen-test #7).
    const issued = await admin.createToken({
      group: 'doctors',
      user: 'dr-grey',
      limit: 1,
      aggregates: ['patient/p-9'],
      expiration: 3600,
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
    // The person, and the token used (QA audit #2): the SDK's own leaf check covers the id.
    expect(e.metadata.issued_by).toEqual({ group: 'doctors', user: 'dr-grey', token: issued.id });
    expect((await admin.verifyEvent('patient', 'p-9', 1)).event).toEqual(e);
    // The CLI shows it beside the person: on the event, and on the audit entry of the token's issue.
    const replay = await p.cli(['aggregate', 'replay', '--aggregate', 'patient', '--aggregate-id', 'p-9']);
    expect(replay.stdout).toContain(`by doctors/dr-grey (${issued.id})`);
    const audit = (await p.cli(['audit', 'list'])).stdout.split('\n');
    const adminId = server.adminToken.slice(0, 11);
    expect(audit.find((l) => l.includes(`token=${issued.id}`))).toContain(`admin/admin (${adminId})`);
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

  it('records CLI writes through the running server as made on the host, with no token id (QA audit #2)', async () => {
    const me = os.userInfo().username;
    const applied = await p.cli([...applyArgs('patient', 'p-cli', 'seen', ['a=1']), '--json']);
    expect(applied.code).toBe(0);
    expect(JSON.parse(applied.stdout).event.metadata.issued_by).toEqual({ group: 'local', user: me });
    // Staged events record who staged them; the commit appends them so.
    expect((await p.cli([...applyArgs('patient', 'p-cli', 'seen', ['a=2']), '--stage'])).code).toBe(0);
    const committed = await p.cli(['aggregate', 'commit', '--json']);
    expect(committed.code).toBe(0);
    expect(JSON.parse(committed.stdout).committed[0].metadata.issued_by).toEqual({
      group: 'local',
      user: me,
    });
    // The channel has no token: a request that names one is recorded without it.
    const config = await loadConfig(p.configPath, p.env);
    const forged = await callControl(config.dataDir, {
      op: 'aggregate.apply',
      args: { aggregate: 'patient', aggregateId: 'p-cli', event: 'seen', field: ['a=3'] },
      identity: { group: 'local', user: me, token: 'edbx_forged' } as IssuedBy,
      proof: await proofOfKeys(config),
    });
    expect((forged?.result as { event: EventRecord }).event.metadata.issued_by).toEqual({
      group: 'local',
      user: me,
    });
    const served = (await admin.listEvents('patient', 'p-cli')).events.map((e) => e.metadata.issued_by);
    expect(served).toEqual([
      { group: 'local', user: me },
      { group: 'local', user: me },
      { group: 'local', user: me },
    ]);
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
