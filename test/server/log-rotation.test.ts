/**
 * What an operator running a daemon for months needs of its log (QA qa-ops items 2, 9b and 6): SIGHUP
 * reopens `<data-dir>/eventdbx.log` after a rotation and never stops the server (foreground too), a
 * crash's reason reaches the current log, `EVENTDBX_LOG_LEVEL=debug` logs a line per request (token id
 * only, no ids or payload values), and a storage error tells HTTP clients its code, never server paths.
 */
import { spawn } from 'node:child_process';
import { readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  MAIN,
  type Project,
  api,
  applyArgs,
  freePort,
  project,
  running,
  serverPid,
  startServer,
} from '../helpers/cli.js';

const lines = async (file: string) =>
  (await readFile(file, 'utf8').catch(() => ''))
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
const waitFor = async (what: string, done: () => Promise<boolean>, ms = 5_000) => {
  for (const until = Date.now() + ms; !(await done()); await new Promise((r) => setTimeout(r, 25)))
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
};

/** `start` (a daemon) on a free port; its one-time admin token. */
async function startDaemon(p: Project, shell = ''): Promise<{ url: string; token: string }> {
  const port = await freePort();
  const args = ['start', '--port', String(port), '--restrict=false', '--json'];
  // `shell`: commands run before the CLI (`ulimit -f`), whose limits the daemon inherits.
  const child = spawn('sh', ['-c', `${shell} exec "$0" "$@"`, process.execPath, MAIN, ...args], {
    cwd: p.dir,
    env: p.env,
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const code = await new Promise((r) => child.on('close', r));
  expect(code, out).toBe(0);
  return { url: `http://127.0.0.1:${port}`, token: (JSON.parse(out) as any).admin_token.token as string };
}

describe('the daemon log (qa-ops #2, #9b)', () => {
  it('SIGHUP reopens eventdbx.log after a rename, the server goes on; debug logs a line per request', async () => {
    const p = await project();
    const log = path.join(p.dataDir, 'eventdbx.log');
    try {
      p.env.EVENTDBX_LOG_LEVEL = 'debug';
      const { url, token } = await startDaemon(p);
      const pid = (await serverPid(p.dataDir))!;
      const secret = 'payload-secret-4711';
      expect(
        (
          await api(`${url}/v1/aggregates/patient/p-4711/events`, token, {
            body: { event_type: 'admitted', payload: { ward: secret } },
          })
        ).status,
      ).toBe(201);
      await rename(log, `${log}.1`);
      process.kill(pid, 'SIGHUP');
      await waitFor('the reopened log', async () =>
        (await lines(log)).some((l) => l.msg === 'log reopened (SIGHUP)'),
      );
      expect((await api(`${url}/v1/aggregates/patient/p-4711`, token)).status).toBe(200);
      await waitFor('the access line', async () => (await lines(log)).some((l) => l.msg === 'request'));

      expect(running(pid)).toBe(true);
      expect((await p.cli(['status'])).code).toBe(0);
      const before = await lines(`${log}.1`);
      const after = await lines(log);
      expect(before.at(-1)).toMatchObject({
        level: 30,
        signal: 'SIGHUP',
        msg: `SIGHUP: reopening the log by its name, ${log}`,
      });
      // One line per request at debug: the route's pattern, the token's id, never the token or a value.
      const route = '/v1/aggregates/:aggregate_type/:aggregate_id';
      expect(before.filter((l) => l.msg === 'request')).toEqual([
        expect.objectContaining({
          level: 20,
          method: 'POST',
          route: `${route}/events`,
          status: 201,
          token_id: token.slice(0, 11),
        }),
      ]);
      const access = after.filter((l) => l.msg === 'request' && l.route !== '/health'); // `status` asked it
      expect(access).toEqual([
        expect.objectContaining({
          level: 20,
          method: 'GET',
          route,
          status: 200,
          ip: '127.0.0.1',
          token_id: token.slice(0, 11),
        }),
      ]);
      expect(typeof access[0]!.duration_ms).toBe('number');
      const text = JSON.stringify([...before, ...after]);
      for (const hidden of [token, secret, 'p-4711']) expect(text).not.toContain(hidden);
    } finally {
      await p.cli(['stop']);
      await p.cleanup();
    }
  }, 60_000);

  it('a foreground server logs SIGHUP and goes on', async () => {
    const p = await project();
    const s = await startServer(p);
    try {
      s.process.kill('SIGHUP');
      await new Promise((r) => setTimeout(r, 300));
      expect([s.process.exitCode, s.process.signalCode]).toEqual([null, null]);
      expect((await fetch(`${s.url}/health`)).status).toBe(200);
    } finally {
      await s.stop();
      await p.cleanup();
    }
  }, 60_000);

  it("a crash's reason is written to the log file by its name, not only to the renamed stderr", async () => {
    const p = await project({ configure: false });
    try {
      const file = path.join(p.dir, 'eventdbx.log');
      const logFile = fileURLToPath(new URL('../../dist/server/log-file.js', import.meta.url));
      const script = `const { LogFile } = await import(${JSON.stringify(logFile)});
        const f = new LogFile(${JSON.stringify(file)}); f.reportCrashes();
        Promise.reject(new Error('boom in a listener'));`;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
      expect(await new Promise((r) => child.on('close', r))).not.toBe(0);
      expect(await lines(file)).toEqual([
        expect.objectContaining({
          level: 60,
          msg: 'the server crashed (unhandledRejection): boom in a listener',
          err: expect.objectContaining({
            message: 'boom in a listener',
            stack: expect.stringContaining('Error: boom'),
          }),
        }),
      ]);
    } finally {
      await p.cleanup();
    }
  });
});

describe('a storage error over HTTP (qa-ops #6)', () => {
  it('tells clients the code and a generic detail, the log and the CLI the full text and `eventdbx restart`', async () => {
    const p = await project();
    try {
      // A file size limit the write-ahead log soon exceeds ("File too large"), as a full disk would.
      const { url, token } = await startDaemon(p, 'ulimit -f 200 &&');
      const big = { event_type: 'admitted', payload: { note: 'x'.repeat(4000) } };
      let failed: { status: number; body: any } | undefined;
      for (let i = 0; i < 2000 && !failed; i++) {
        const r = await api(`${url}/v1/aggregates/patient/p-${i}/events`, token, { body: big });
        if (r.status !== 201) failed = r;
      }
      const refused = await api(`${url}/v1/aggregates/patient/q-1/events`, token, { body: big });
      const health = await api(`${url}/health`, undefined);
      expect(failed).toMatchObject({
        status: 500,
        body: {
          code: 'EDBX_ERR_STORE_IO',
          detail: "storage error on the server; the server's log has the cause",
        },
      });
      expect(refused).toMatchObject({
        status: 500,
        body: {
          code: 'EDBX_ERR_STORE_IO',
          detail:
            "storage error: an earlier write failed; every write is refused until the cause is fixed and the server restarted (`eventdbx restart`); the server's log has the cause",
        },
      });
      expect(health).toMatchObject({ status: 503, body: { status: 'failing', code: 'EDBX_ERR_STORE_IO' } });
      for (const answer of [failed!.body, refused.body, health.body])
        expect(JSON.stringify(answer)).not.toContain(p.dir);
      // The CLI's user is the operator: the full text, through the server.
      const cli = await p.cli(applyArgs('patient', 'q-2', 'admitted', ['note=x']));
      expect(cli.code).toBe(1);
      expect(cli.stderr).toContain('File too large');
      expect(cli.stderr).toContain(
        'every write is refused until the cause is fixed and the server restarted (`eventdbx restart`)',
      );
      // `status` as well: the cause from the log, where /health gave the generic detail.
      const status = await p.cli(['status']);
      expect(status.code).toBe(1);
      expect(status.stderr).toMatch(/; its log says: .*File too large.* \[EDBX_ERR_STORE_IO\]\n$/);
      const log = JSON.stringify(await lines(path.join(p.dataDir, 'eventdbx.log')));
      expect(log).toContain(`${p.dataDir}/`);
      expect(log).toContain('File too large');
      expect(log).not.toContain('reopen the store');
    } finally {
      await p.cli(['stop']);
      await p.cleanup();
    }
  }, 60_000);
});
