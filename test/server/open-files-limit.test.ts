/**
 * Regressions of the qa-full round's findings 1 and 4. (1) `max_connections` (default 1024) was not
 * related to the open-files limit: under `ulimit -n 1024`, 1100 idle connections took every
 * descriptor, the store's next write-ahead log could not be opened, and every write was refused until
 * a restart. The server now keeps descriptors for its store, plugins and commands and caps connections
 * at what the limit leaves (warning at start), or refuses to start when that is too few. (4) Under
 * `ulimit -n 64` every command failed with EDBX_ERR_INTERNAL ("please report it"): now
 * EDBX_ERR_TOO_MANY_OPEN_FILES with the limit and what to raise it to.
 */
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  MAIN,
  type Project,
  type RunningServer,
  applyArgs,
  freePort,
  nodeCommand,
  outcomeOf,
  project,
  startServer,
} from '../helpers/cli.js';

let p: Project | undefined;
let server: RunningServer | undefined;
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await server?.stop();
  server = undefined;
  await p?.cleanup();
  p = undefined;
});

/** An eventdbx command of project `q` under an open-files limit of `openFiles`. */
function cliUnder(q: Project, openFiles: number, args: readonly string[]) {
  const [command, argv] = nodeCommand([MAIN, ...args], openFiles);
  const child = spawn(command, argv, { cwd: q.dir, env: q.env, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.end();
  return outcomeOf(child);
}

/** A request on one keep-alive connection, opened before a flood takes the free slots. */
function request(
  agent: http.Agent,
  port: number,
  method: string,
  path: string,
  token: string,
  body?: unknown,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** The value of a metric without labels in a Prometheus text. */
const metric = (text: string, name: string): number =>
  Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);

/** The server's JSON log lines with `msg` containing `part`. */
const logged = (s: RunningServer, part: string): Array<Record<string, unknown>> =>
  s
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{') && l.includes(part))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

const WALS = async (dir: string) => (await readdir(dir)).filter((n) => n.endsWith('.log')).sort();

describe('max_connections and the open-files limit (qa-full #1)', () => {
  it(
    'caps connections below the limit, warns, and a flood at the cap leaves writes and commands working',
    { timeout: 90_000 },
    async () => {
      p = await project();
      const limit = 256;
      server = await startServer(p, ['--restrict=false'], { openFiles: limit });
      const [warning] = logged(server, 'max_connections lowered from 1024');
      expect(warning, server.output()).toMatchObject({
        level: 40,
        code: 'EDBX_ERR_TOO_MANY_OPEN_FILES',
        max_connections: 1024,
        open_files_limit: limit,
      });
      const reserved = warning!.reserved_descriptors as number;
      const cap = warning!.effective_max_connections as number;
      expect(reserved).toBeGreaterThanOrEqual(144);
      expect(cap).toBe(limit - reserved);
      expect(String(warning!.msg)).toContain(`raise the limit to at least ${reserved + 1024}`);
      expect(String(warning!.msg)).toContain('LimitNOFILE=');
      // Said where `start` prints, too (a daemon's launcher relays it).
      expect(server.output()).toContain(`Warning: max_connections lowered from 1024 to ${cap}: `);

      // One keep-alive connection, opened before the flood, for the writes and the metrics.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const token = server.adminToken;
      const port = server.port;
      expect((await request(agent, port, 'GET', '/health', token)).status).toBe(200);

      // 300 idle connections, more than the cap: before, they took every descriptor. Then 50 more
      // once the connection of startServer's health check is closed (keep-alive ends after 5 s), so
      // no descriptor it freed is left: the flood takes what it can, as one that retries would.
      const flood = (n: number) =>
        Promise.all(
          Array.from({ length: n }, () => {
            const s = net.connect(port, '127.0.0.1');
            sockets.push(s);
            s.on('error', () => undefined);
            return new Promise<void>((r) => s.once('connect', () => r()).once('close', () => r()));
          }),
        );
      await flood(300);
      for (let i = 0; i < 3; i++) {
        await new Promise((r) => setTimeout(r, 2_000));
        // Within keep-alive, so this connection stays open.
        expect((await request(agent, port, 'GET', '/health', token)).status).toBe(200);
      }
      await flood(50);
      const open = () => sockets.filter((s) => !s.destroyed && !s.closed).length;
      const deadline = Date.now() + 10_000;
      while (open() > cap && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(open()).toBeLessThanOrEqual(cap);
      const metrics = (await request(agent, port, 'GET', '/metrics', token)).text;
      expect(metric(metrics, 'eventdbx_http_connections_max')).toBe(cap);
      expect(metric(metrics, 'eventdbx_http_connections_open')).toBeLessThanOrEqual(cap);
      expect(metric(metrics, 'eventdbx_http_connections_dropped_total')).toBeGreaterThan(0);

      // A CLI command reaches the server through its control socket.
      const applied = await p.cli([...applyArgs('patient', 'p-1', 'added', ['name=Ana']), '--json']);
      expect(applied.code, applied.stderr).toBe(0);

      // Enough appends for RocksDB to switch to a new write-ahead log (a new file) under the flood.
      const before = await WALS(p.dataDir);
      const pad = 'y'.repeat(240 * 1024);
      const statuses = new Map<number, number>();
      for (let i = 0; i < 160; i++) {
        const { status } = await request(agent, port, 'POST', `/v1/aggregates/big/b-${i}/events`, token, {
          event_type: 'x',
          payload: { pad },
        });
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
      expect(Object.fromEntries(statuses)).toEqual({ 201: 160 });
      expect(await WALS(p.dataDir)).not.toEqual(before);
      const health = await request(agent, port, 'GET', '/health', token);
      expect(health.status, health.text).toBe(200);
      expect(JSON.parse(health.text).status).toBe('ok');
      agent.destroy();
    },
  );

  it('refuses to start when the limit leaves fewer than 16 connections, saying what to raise it to', async () => {
    p = await project();
    const started = await cliUnder(p, 128, [
      'start',
      '--foreground',
      '--port',
      String(await freePort()),
      '--restrict=false',
    ]);
    expect(started.code).toBe(1);
    expect(started.stderr).toMatch(
      /^error: the open-files limit \(`ulimit -n`\) is 128: the server keeps 144 descriptors for its store \(0 table files\), its plugins \(0\) and CLI commands, which leaves 0 for connections, fewer than 16; raise it to at least 160 \(1168 for all 1024 max_connections\): `ulimit -n 1168` in the shell that starts eventdbx, or `LimitNOFILE=1168` in its systemd unit \[EDBX_ERR_TOO_MANY_OPEN_FILES\]$/m,
    );
  });
});

describe('a command under a very low open-files limit (qa-full #4)', () => {
  it('fails with EDBX_ERR_TOO_MANY_OPEN_FILES, its limit and what to raise it to, not an internal error', async () => {
    p = await project();
    for (const args of [['status'], ['start', '--foreground', '--port', String(await freePort())]]) {
      const r = await cliUnder(p, 64, args);
      expect(r.code).toBe(1);
      expect(r.stderr).not.toContain('EDBX_ERR_INTERNAL');
      expect(r.stderr).toMatch(
        /^error: too many open files \(EMFILE: .*\): this process may have 64 files open \(its open-files limit\); raise the limit to at least 256: `ulimit -n 256` in the shell that starts eventdbx, or `LimitNOFILE=256` in its systemd unit, then run the command again \[EDBX_ERR_TOO_MANY_OPEN_FILES\]$/m,
      );
    }
  });
});
