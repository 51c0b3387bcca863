/**
 * A diverged plugin with the real CLI and server: the store is restored from a backup (`eventdbx
 * backup`, then the backup put in place of the data dir) while its JSON Lines file kept the events
 * appended after the backup. `plugin retry` and a plain `plugin replay` said nothing and exited 0 (on
 * the data dir; through the server, the replay): now they print the EDBX_ERR_PLUGIN_DIVERGED line,
 * with what differs and the command that repairs it, and exit 1, the same on the data dir as through
 * the server; over HTTP they answer 409 with it; `plugin status` and `plugin list` show it.
 */
import { readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Project, type RunningServer, api, project, startServer } from '../helpers/cli.js';
import { waitFor } from './fixtures.js';

let p: Project;
let server: RunningServer | undefined;
beforeEach(async () => {
  p = await project();
});
afterEach(async () => {
  await server?.stop();
  server = undefined;
  await p.cleanup();
});

const lines = async (file: string): Promise<string[]> => {
  try {
    return (await readFile(file, 'utf8')).trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
};

async function post(s: RunningServer, id: string): Promise<void> {
  const r = await api(`${s.url}/v1/aggregates/patient/${id}/events`, s.adminToken, {
    body: { event_type: 'patient-added', payload: { name: id } },
  });
  expect(r.status).toBe(201);
}

/** The plugin's status once the running server found its destination diverged. */
const diverged = (s: RunningServer, token: string) =>
  waitFor('the plugin to refuse', async () => {
    const r = await api(`${s.url}/v1/plugins/status`, token);
    const json = (
      r.body.plugins as Array<{ name: string; state: string; last_error?: { message: string } }>
    )[0];
    return json?.state === 'failed' ? json : undefined;
  });

const LINE =
  /^error: json destination .+ holds the event at position \d+, which this store does not have \(its last position is \d+\): .+ `eventdbx plugin replay json --rebuild` \[EDBX_ERR_PLUGIN_DIVERGED\]\n$/;

describe('a plugin whose destination diverged', () => {
  it('is refused by retry and plain replay, saying why, locally, through the server and over HTTP', async () => {
    const file = path.join(p.dir, 'out', 'events.jsonl');
    server = await startServer(p);
    const token = server.adminToken;
    expect((await p.cli(['plugin', 'json', '--path', 'out/events.jsonl'])).code).toBe(0);
    for (const id of ['p-1', 'p-2', 'p-3']) await post(server, id);
    await waitFor('3 records', async () => (await lines(file)).length === 3);
    const backup = await p.cli(['backup', 'backups/b', '--json']);
    expect(backup.code, backup.stderr).toBe(0);
    // Delivered, then lost by the restore.
    for (const id of ['p-4', 'p-5']) await post(server, id);
    await waitFor('5 records', async () => (await lines(file)).length === 5);
    await server.stop();
    await rename(p.dataDir, path.join(p.dir, 'old-data'));
    await rename(path.join(p.dir, 'backups', 'b'), p.dataDir);
    const held = await lines(file);

    // The first server on the restored backup records the restore (one more position), and finds
    // the destination diverged; the store does not change after that (its servers start in the
    // default mode, which records nothing).
    server = await startServer(p);
    await diverged(server, token);
    await server.stop();
    server = undefined;
    const local = {
      retry: await p.cli(['plugin', 'retry', 'json']),
      replay: await p.cli(['plugin', 'replay', 'json']),
    };

    server = await startServer(p);
    const s = server;
    const status = await diverged(s, token);
    const remote = {
      retry: await p.cli(['plugin', 'retry', 'json']),
      replay: await p.cli(['plugin', 'replay', 'json']),
    };
    for (const r of [local.retry, local.replay, remote.retry, remote.replay]) {
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(LINE);
      expect(r.stderr).toBe(`error: ${status.last_error!.message} [EDBX_ERR_PLUGIN_DIVERGED]\n`);
    }

    for (const [route, body] of [
      ['retry', undefined],
      ['replay', {}],
    ] as const) {
      const r = await api(`${s.url}/v1/plugins/json/${route}`, token, {
        method: 'POST',
        ...(body ? { body } : {}),
      });
      expect(r.status).toBe(409);
      expect(r.body).toMatchObject({
        code: 'EDBX_ERR_PLUGIN_DIVERGED',
        detail: status.last_error!.message,
      });
    }

    // Status and list say why, in full.
    for (const command of ['status', 'list']) {
      const r = await p.cli(['plugin', command]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`json not delivering: ${status.last_error!.message}`);
    }
    const list = JSON.parse((await p.cli(['plugin', 'list', '--json'])).stdout);
    expect(list.plugins[0].failure).toMatchObject({
      code: 'EDBX_ERR_PLUGIN_DIVERGED',
      message: status.last_error!.message,
    });

    // Nothing was written over the lost history; the rebuild repairs it.
    expect(await lines(file)).toEqual(held);
    const rebuilt = await p.cli(['plugin', 'replay', 'json', '--rebuild']);
    expect(rebuilt.code, rebuilt.stderr).toBe(0);
    const ids = await waitFor('the restored store delivered', async () => {
      const l = await lines(file);
      return l.length === 3
        ? l.map((x) => (JSON.parse(x) as { aggregate_id: string }).aggregate_id)
        : undefined;
    });
    expect(ids).toEqual(['p-1', 'p-2', 'p-3']);
  }, 120_000);
});
