/**
 * Regression of the QA audit's finding 8: `plugin http --endpoint <new>` kept the headers it omits,
 * so pointing the plugin at another receiver handed it the old receiver's credentials. A move to
 * another origin (scheme, host or port) now drops them, says so and audits it, unless
 * `--keep-headers`; a move on the same origin keeps them as before.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Project, type RunningServer, api, project, startServer } from '../helpers/cli.js';
import { type HttpReceiver, httpReceiver, waitFor } from './fixtures.js';

let p: Project;
let server: RunningServer | undefined;
const receivers: HttpReceiver[] = [];

beforeEach(async () => {
  p = await project();
});
afterEach(async () => {
  await server?.stop();
  server = undefined;
  for (const rx of receivers.splice(0)) await rx.close();
  await p.cleanup();
});

async function receiver(): Promise<HttpReceiver> {
  const rx = await httpReceiver();
  receivers.push(rx);
  return rx;
}

async function cliJson(args: string[]): Promise<any> {
  const r = await p.cli([...args, '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
}

async function headersListed(): Promise<Record<string, string>> {
  const { plugins } = (await cliJson(['plugin', 'list'])) as { plugins: any[] };
  return plugins.find((x) => x.name === 'http').settings.headers as Record<string, string>;
}

const SECRETS = ['Authorization=Bearer WEBHOOKSECRET', 'X-Api-Key=APIKEYSECRET'];
const withSecrets = (endpoint: string) => [
  'plugin',
  'http',
  '--endpoint',
  endpoint,
  ...SECRETS.flatMap((h) => ['--header', h]),
];

describe('plugin http: headers and a new endpoint (QA audit #8)', () => {
  it('a move to another receiver drops the headers, says so, audits it, and the new receiver gets none', async () => {
    const a = await receiver();
    const b = await receiver();
    server = await startServer(p, ['--restrict=false']);
    const post = async (id: string) => {
      const r = await api(`${server!.url}/v1/aggregates/patient/${id}/events`, server!.adminToken, {
        body: { event_type: 'patient-added', payload: { n: id } },
      });
      expect(r.status).toBe(201);
    };
    expect((await p.cli(withSecrets(`${a.url}?token=QUERYSECRET`))).code).toBe(0);
    await post('p-1');
    await waitFor('the delivery to the first receiver', () => a.accepted.length === 1);
    expect(a.requests[0]!.headers.authorization).toBe('Bearer WEBHOOKSECRET');

    const moved = await p.cli(['plugin', 'http', '--endpoint', b.url]);
    expect(moved.code).toBe(0);
    const line = moved.stdout.split('\n').find((l) => l.startsWith('dropped'));
    expect(line).toContain('dropped header(s) Authorization, X-Api-Key');
    expect(line).toContain('--header KEY=VALUE');
    expect(line).toContain('--keep-headers');
    expect(moved.stdout).not.toContain('SECRET');
    expect(await headersListed()).toEqual({});

    await post('p-2');
    await waitFor('the delivery to the second receiver', () => b.accepted.length === 1);
    expect(b.accepted[0]!.aggregate_id).toBe('p-2');
    expect(b.requests[0]!.headers.authorization).toBeUndefined();
    expect(b.requests[0]!.headers['x-api-key']).toBeUndefined();
    expect(b.requests[0]!.headers['idempotency-key']).toBeDefined();

    const audit = (await cliJson(['audit', 'list'])) as { entries?: any[] } | any[];
    const entries = Array.isArray(audit) ? audit : audit.entries!;
    const last = entries.filter((e) => e.event_type === 'plugin-configured').at(-1);
    expect(last.payload).toMatchObject({ plugin: 'http', dropped_headers: 'Authorization, X-Api-Key' });
    expect(last.payload.target).toBe(`POST ${b.url}`);
    expect(JSON.stringify(entries)).not.toContain('SECRET');
  });

  it('--keep-headers keeps them across origins; a new path or query on the same origin keeps them', async () => {
    expect((await p.cli(withSecrets('http://127.0.0.1:9/in'))).code).toBe(0);
    // Same scheme, host and port: another path and a query.
    const same = await cliJson(['plugin', 'http', '--endpoint', 'http://127.0.0.1:9/other?x=1']);
    expect(same.dropped_headers).toBeUndefined();
    expect(Object.keys(await headersListed())).toEqual(['Authorization', 'X-Api-Key']);

    const kept = await cliJson(['plugin', 'http', '--endpoint', 'http://127.0.0.2:9/in', '--keep-headers']);
    expect(kept.dropped_headers).toBeUndefined();
    expect(Object.keys(await headersListed())).toEqual(['Authorization', 'X-Api-Key']);

    // Another port alone, and another scheme alone, are other origins.
    const port = await cliJson(['plugin', 'http', '--endpoint', 'http://127.0.0.2:10/in']);
    expect(port.dropped_headers).toEqual(['Authorization', 'X-Api-Key']);
    expect(await headersListed()).toEqual({});
    expect((await p.cli(withSecrets('http://127.0.0.2:10/in'))).code).toBe(0);
    const scheme = await cliJson(['plugin', 'http', '--endpoint', 'https://127.0.0.2:10/in']);
    expect(scheme.dropped_headers).toEqual(['Authorization', 'X-Api-Key']);

    // Headers given with the move are the new set, as before: nothing is reported dropped.
    const given = await cliJson([...withSecrets('http://127.0.0.3:9/in').slice(0, 4), '--header', 'X-A=b']);
    expect(given.dropped_headers).toBeUndefined();
    expect(Object.keys(await headersListed())).toEqual(['X-A']);
  });

  it('refuses --keep-headers with --header or --no-header, or without --endpoint, changing nothing', async () => {
    expect((await p.cli(withSecrets('http://127.0.0.1:9/in'))).code).toBe(0);
    for (const extra of [['--header', 'X-A=b'], ['--no-header']]) {
      const r = await p.cli([
        'plugin',
        'http',
        '--endpoint',
        'http://127.0.0.2:9/in',
        '--keep-headers',
        ...extra,
      ]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('EDBX_ERR_PLUGIN_CONFIG_INVALID');
      expect(r.stderr).toContain('give one of them');
    }
    // Alone, it would change nothing: refused rather than taken (and audited) as a change.
    const alone = await p.cli(['plugin', 'http', '--keep-headers']);
    expect(alone.code).toBe(1);
    expect(alone.stderr).toContain('--keep-headers goes with --endpoint');
    expect(Object.keys(await headersListed())).toEqual(['Authorization', 'X-Api-Key']);
  });
});
