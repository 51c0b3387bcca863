/**
 * Plugins end to end with the real CLI and server: configuration recorded while no server runs,
 * changes applied to a running server without a restart, secrets never shown, the admin endpoints,
 * the log plugin, and a server killed with SIGKILL in the middle of a delivery.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EventRecord } from '../../src/core/event.js';
import { type Project, type RunningServer, api, applyArgs, project, startServer } from '../helpers/cli.js';
import { type HttpReceiver, httpReceiver, waitFor } from './fixtures.js';

let p: Project;
let server: RunningServer | undefined;
let rx: HttpReceiver;

beforeEach(async () => {
  p = await project();
  rx = await httpReceiver();
});
afterEach(async () => {
  await server?.stop();
  server = undefined;
  await rx.close();
  await p.cleanup();
});

const apply = (id: string, field: string) => p.cli(applyArgs('patient', id, 'patient-added', [field]));

async function post(s: RunningServer, id: string, payload: Record<string, string>): Promise<EventRecord> {
  const r = await api(`${s.url}/v1/aggregates/patient/${id}/events`, s.adminToken, {
    body: { event_type: 'patient-updated', payload },
  });
  expect(r.status).toBe(201);
  return r.body as EventRecord;
}

async function cliJson(args: string[]): Promise<any> {
  const r = await p.cli([...args, '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
}

describe('plugins with the server', () => {
  it('records a plugin configured while no server runs, and delivers once the server starts', async () => {
    for (const id of ['p-1', 'p-2', 'p-3']) expect((await apply(id, 'name=x')).code).toBe(0);
    const r = await p.cli(['plugin', 'json', '--path', 'out/events.jsonl']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('no server is running');
    const file = path.join(p.dir, 'out', 'events.jsonl'); // relative to where the CLI ran
    server = await startServer(p, ['--restrict=false']);
    const lines = await waitFor('3 lines', async () => {
      const l = (await readFile(file, 'utf8')).trim().split('\n');
      return l.length === 3 ? l : undefined;
    });
    expect(lines.map((l) => (JSON.parse(l) as EventRecord).aggregate_id)).toEqual(['p-1', 'p-2', 'p-3']);
  });

  it('applies plugin commands to the running server without a restart, and never shows secrets', async () => {
    server = await startServer(p, ['--restrict=false']);
    for (let i = 0; i < 5; i++) await post(server, `p-${i}`, { n: String(i) });
    const add = await p.cli([
      'plugin',
      'http',
      '--endpoint',
      rx.url,
      '--header',
      'Authorization=Bearer topsecret',
      '--backoff',
      '10',
    ]);
    expect(add.code).toBe(0);
    expect(add.stdout).toContain('applied by the running server');
    await waitFor('5 deliveries', () => rx.accepted.length === 5);
    expect(rx.requests[0]!.headers.authorization).toBe('Bearer topsecret');

    await cliJson([
      'plugin',
      'postgres',
      '--connection',
      'postgres://bob:hunter2@127.0.0.1:1/db',
      '--disable',
    ]);
    const shown = [
      (await p.cli(['plugin', 'list'])).stdout,
      (await p.cli(['plugin', 'list', '--json'])).stdout,
      (await p.cli(['plugin', 'status', '--json'])).stdout,
      (await p.cli(['audit', 'list', '--json'])).stdout,
      (await api(`${server.url}/v1/plugins`, server.adminToken)).body,
    ].map((x) => (typeof x === 'string' ? x : JSON.stringify(x)));
    for (const text of shown) {
      expect(text).not.toContain('topsecret');
      expect(text).not.toContain('hunter2');
    }
    expect(shown[0]).toContain('Authorization: ***');
    expect(shown[0]).toContain('postgres://bob:***@127.0.0.1:1/db');

    const status = await cliJson(['plugin', 'status']);
    expect(status.running).toBe(true);
    expect(status.plugins).toEqual([
      expect.objectContaining({ name: 'http', state: 'idle', lag: 0, delivered: 5, dead_letters: 0 }),
      expect.objectContaining({ name: 'postgres', state: 'disabled' }),
    ]);

    // Disabled: commits are not delivered; enabled again: they are, without a restart.
    await cliJson(['plugin', 'http', '--disable']);
    const late = await post(server, 'p-9', { n: '9' });
    const paused = await cliJson(['plugin', 'status']);
    expect(paused.plugins[0]).toMatchObject({ state: 'disabled', head: late.position });
    expect(paused.plugins[0].cursor).toBeLessThanOrEqual(late.position);
    await cliJson(['plugin', 'http', '--endpoint', rx.url, '--header', 'Authorization=Bearer topsecret']);
    await waitFor('the event appended while disabled', () => rx.accepted.length === 6);
    expect(rx.accepted.at(-1)!.aggregate_id).toBe('p-9');
    expect(server.output()).not.toContain('topsecret');
    expect(server.output()).not.toContain('hunter2');
  });

  it('serves plugin status, dead letters, replay and retry to admin tokens only', async () => {
    server = await startServer(p, ['--restrict=false']);
    await post(server, 'p-1', { n: '1' });
    rx.respond = () => 500;
    await cliJson([
      'plugin',
      'http',
      '--endpoint',
      rx.url,
      '--backoff',
      '5',
      '--backoff-max',
      '20',
      '--max-attempts',
      '2',
    ]);
    const s = server;
    const dl = await waitFor('a dead letter', async () => {
      const r = await api(`${s.url}/v1/plugins/http/dead-letters`, s.adminToken);
      return r.body.total === 1 ? r.body : undefined;
    });
    expect(dl.dead_letters[0]).toMatchObject({
      aggregate_id: 'p-1',
      attempts: 2,
      code: 'EDBX_ERR_PLUGIN_DELIVERY',
    });
    const cli = await p.cli(['plugin', 'dead-letters', 'http']);
    expect(cli.stdout).toContain('answered 500');

    rx.respond = () => 200;
    const retry = await api(`${s.url}/v1/plugins/http/retry`, s.adminToken, { method: 'POST' });
    expect(retry.status).toBe(200);
    expect(retry.body).toMatchObject({ running: true, outcome: { retried: 1, delivered: 1, failed: 0 } });
    expect(rx.accepted.map((e) => e.aggregate_id)).toEqual(['p-1']);

    const replay = await api(`${s.url}/v1/plugins/http/replay`, s.adminToken, { body: { from: 1 } });
    expect(replay.status).toBe(200);
    await waitFor('the replayed event', () => rx.accepted.length === 2);
    // The body is optional (from 1): none at all, or an empty one sent with a JSON Content-Type.
    const bare = await api(`${s.url}/v1/plugins/http/replay`, s.adminToken, { method: 'POST' });
    expect([bare.status, bare.body.from]).toEqual([200, 1]);
    const empty = await api(`${s.url}/v1/plugins/http/replay`, s.adminToken, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
    });
    expect([empty.status, empty.body.from]).toEqual([200, 1]);

    const gen = await cliJson(['token', 'generate', '--group', 'staff', '--user', 'bob']);
    const staff = gen.token.token as string;
    for (const [method, url] of [
      ['GET', '/v1/plugins'],
      ['GET', '/v1/plugins/status'],
      ['POST', '/v1/plugins/http/retry'],
    ] as const) {
      const r = await api(`${s.url}${url}`, staff, { method });
      expect(r.status).toBe(403);
      expect(r.body.code).toBe('EDBX_ERR_GROUP_NOT_ALLOWED');
    }
    expect((await api(`${s.url}/v1/plugins/nope/dead-letters`, s.adminToken)).body.code).toBe(
      'EDBX_ERR_PLUGIN_UNKNOWN',
    );
  });

  it('writes no payload value to the server log nor to the dead letter (qa-aud #3)', async () => {
    const secret = 'HIV-POSITIVE-SECRET';
    server = await startServer(p, ['--restrict=false']);
    await cliJson(['plugin', 'sqlite', '--path', 'mirror.db', '--max-attempts', '1']);
    await cliJson(['plugin', 'map', '--aggregate', 'patient', '--field', 'age', '--datatype', 'integer']);
    await post(server, 'p-1', { age: secret });
    const s = server;
    const dl = await waitFor('a dead letter', async () => {
      const r = await api(`${s.url}/v1/plugins/sqlite/dead-letters`, s.adminToken);
      return r.body.total === 1 ? r.body : undefined;
    });
    expect(dl.dead_letters[0]).toMatchObject({ code: 'EDBX_ERR_PLUGIN_CAST', version: 1 });
    await waitFor('the logged failure', () => s.output().includes('EDBX_ERR_PLUGIN_CAST'));
    const shown = [
      s.output(),
      JSON.stringify(dl),
      (await p.cli(['plugin', 'dead-letters', 'sqlite'])).stdout,
      (await p.cli(['plugin', 'status'])).stdout,
      JSON.stringify((await api(`${s.url}/v1/plugins/status`, s.adminToken)).body),
    ];
    for (const text of shown) expect(text).not.toContain(secret);
    // The value is where it belongs: in the aggregate, for those allowed to read it.
    const got = await p.cli([
      'aggregate',
      'get',
      '--aggregate',
      'patient',
      '--aggregate-id',
      'p-1',
      '--version',
      '1',
    ]);
    expect(got.stdout).toContain(secret);
  });

  it("writes the log plugin's lines through the server log at the configured level", async () => {
    server = await startServer(p, ['--restrict=false']);
    await cliJson(['plugin', 'log', '--level', 'warn', '--template', '{aggregate} {id} {event} v{version}']);
    await post(server, 'p-7', { n: '7' });
    const s = server;
    await waitFor('the log line', () => s.output().includes('patient p-7 patient-updated v1'));
    const line = JSON.parse(
      s
        .output()
        .split('\n')
        .find((l) => l.includes('patient p-7'))!,
    ) as { level: number };
    expect(line.level).toBe(40); // pino's warn
  });

  it('resumes delivery from the cursor after the server is killed with SIGKILL mid-delivery: no event lost (issue 6)', async () => {
    server = await startServer(p, ['--restrict=false']);
    const s = server;
    const appended: EventRecord[] = [];
    for (let b = 0; b < 10; b++)
      appended.push(
        ...(await Promise.all(Array.from({ length: 20 }, (_, i) => post(s, `p-${i}`, { b: String(b) })))),
      );
    appended.sort((a, b) => a.position - b.position);

    // The receiver takes 60 events, then holds the next answer: the kill lands mid-delivery.
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    rx.respond = async (_body, n) => {
      if (n >= 60) await gate;
      return 200;
    };
    await cliJson(['plugin', 'http', '--endpoint', rx.url, '--backoff', '10']);
    await waitFor('a stalled delivery', () => rx.requests.length >= 60);
    await server.kill();
    server = undefined;
    const before = rx.accepted.length;
    expect(before).toBeLessThan(appended.length);
    open();

    server = await startServer(p, ['--restrict=false']);
    const want = appended.map((e) => e.metadata.event_id);
    await waitFor(
      'every event',
      () => new Set(rx.accepted.map((e) => e.metadata.event_id)).size === want.length,
    );
    const firsts = [...new Set(rx.accepted.map((e) => e.metadata.event_id))];
    expect(firsts).toEqual(want);
    // Resumed from the saved cursor, not from the first event: fewer repeats than events seen before.
    expect(rx.accepted.length - want.length).toBeLessThan(before);
    const status = await cliJson(['plugin', 'status']);
    expect(status.plugins[0]).toMatchObject({ name: 'http', lag: 0, dead_letters: 0 });
  });
});
