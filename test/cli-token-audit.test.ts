/**
 * `token generate --audit` (auditor QA, finding 3): a token that reads the audit log without reading
 * every aggregate, issued by the real CLI on its own store and through a running server's control
 * channel; shown by `token list` and recorded in its `token-generated` audit entry.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Project, type RunningServer, api, project, startServer } from './helpers/cli.js';

const AUDITOR = ['--group', 'auditors', '--read-only', '--aggregate', 'patient/p-001'];

describe('token generate --audit', () => {
  let p: Project;
  let server: RunningServer | undefined;
  beforeAll(async () => {
    p = await project();
  });
  afterAll(async () => {
    await server?.stop();
    await p?.cleanup();
  });

  const json = async (args: string[]) => {
    const r = await p.cli([...args, '--json']);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout);
  };

  it('is a documented flag, shown in the new token, token list and the audit entry', async () => {
    expect((await p.cli(['token', 'generate', '--help'])).stdout).toMatch(/--audit\s+the token may read/);
    const human = await p.cli(['token', 'generate', ...AUDITOR, '--user', 'ann', '--audit']);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toContain(', read-only, scopes patient/p-001, reads the audit log');
    const { token } = await json(['token', 'generate', ...AUDITOR, '--user', 'bob', '--audit']);
    expect(token).toMatchObject({ audit: true, read_only: true, scopes: ['patient/p-001'] });
    const plain = (await json(['token', 'generate', ...AUDITOR, '--user', 'carl'])).token;
    expect(plain.audit).toBe(false);

    const listed = (await json(['token', 'list'])).tokens as Array<{ id: string; audit: boolean }>;
    expect(listed.find((t) => t.id === token.id)?.audit).toBe(true);
    expect(listed.find((t) => t.id === plain.id)?.audit).toBe(false);
    const table = (await p.cli(['token', 'list'])).stdout;
    expect(table).toContain('read-only patient/p-001 +audit');
    const entries = (await json(['audit', 'list'])).entries as Array<{ payload: Record<string, string> }>;
    expect(entries.find((e) => e.payload.token === token.id)?.payload.audit).toBe('true');
    expect(entries.find((e) => e.payload.token === plain.id)?.payload.audit).toBe('false');
  });

  it('through a running server (control channel) too, and the token reads GET /v1/audit', async () => {
    server = await startServer(p, ['--restrict=false']);
    const auditor = (await json(['token', 'generate', ...AUDITOR, '--user', 'dan', '--audit'])).token;
    const plain = (await json(['token', 'generate', ...AUDITOR, '--user', 'eve'])).token;
    expect(auditor.audit).toBe(true);
    const ok = await api(`${server.url}/v1/audit?take=1000`, auditor.token);
    expect(ok.status).toBe(200);
    // Every entry so far is about a token that can reach patient/p-001 (or the server's own admin).
    expect(ok.body.entries.length).toBeGreaterThan(0);
    const refused = await api(`${server.url}/v1/audit`, plain.token);
    expect(refused.status).toBe(403);
    expect(refused.body.code).toBe('EDBX_ERR_GROUP_NOT_ALLOWED');
  });
});
