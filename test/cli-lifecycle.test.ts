/**
 * Server lifecycle commands from the CLI against a real daemon: failed restarts keep the server up,
 * an unresponsive server is reported instead of hanging, `--json` and `--data-dir` everywhere.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastBytes } from '../src/cli/server-commands.js';
import { processFacts } from '../src/server/proc.js';
import { MAIN, type Project, applyArgs, freePort, project, run, running, serverPid } from './helpers/cli.js';

describe('server lifecycle from the CLI', () => {
  let p: Project;
  const pidOf = (dataDir = p.dataDir) => serverPid(dataDir);

  beforeAll(async () => {
    p = await project();
    const r = await p.cli(['config', '--port', String(await freePort())]);
    if (r.code !== 0) throw new Error(r.stderr);
  });
  afterAll(async () => {
    for (const dir of [p.dataDir, path.join(p.dir, 'other')]) {
      const pid = await pidOf(dir);
      if (pid && running(pid)) {
        process.kill(pid, 'SIGCONT');
        process.kill(pid, 'SIGKILL');
      }
    }
    await p.cleanup();
  });

  it('a restart with a bad option refuses before stopping: the server keeps running', async () => {
    const started = await p.cli(['start']);
    expect(started.code, started.stderr).toBe(0);
    const pid = (await pidOf())!;
    const bogus = await p.cli(['restart', '--restrict=bogus']);
    expect(bogus.code).toBe(1);
    expect(bogus.stderr).toMatch(
      /invalid --restrict "bogus": use true, strict or false \[EDBX_ERR_INVALID_ARGUMENT\]/,
    );
    const port = await p.cli(['restart', '--port', '99999']);
    expect(port.code).toBe(1);
    expect(port.stderr).toMatch(/--port.*\[EDBX_ERR_INVALID_ARGUMENT\]/);
    // A port something else listens on: refused before stopping too.
    const blocker = net.createServer();
    const taken = await new Promise<number>((resolve) =>
      blocker.listen(0, '127.0.0.1', () => resolve((blocker.address() as net.AddressInfo).port)),
    );
    try {
      const busy = await p.cli(['restart', '--port', String(taken)]);
      expect(busy.code).toBe(1);
      expect(busy.stderr).toMatch(/port \d+ on 127\.0\.0\.1 is already in use.*\[EDBX_ERR_PORT_IN_USE\]/);
    } finally {
      blocker.close();
    }
    // EVENTDBX_HOST too (qa-ops #1): it used to stop the server, then the new one could not listen.
    for (const host of ['10.255.255.1', 'no-such-host.invalid']) {
      const r = await run(['restart', '--json'], { cwd: p.dir, env: { ...p.env, EVENTDBX_HOST: host } });
      expect([r.code, r.stdout]).toEqual([1, '']);
      expect(r.stderr).toMatch(/EVENTDBX_HOST is invalid: cannot listen on .*\[EDBX_ERR_CONFIG_INVALID\]\n$/);
    }
    expect(running(pid)).toBe(true);
    expect(await pidOf()).toBe(pid);
  });

  it('a restart given keys that do not open the store, or none, refuses before stopping', async () => {
    const pid = (await pidOf())!;
    // They used to be found by the new server only: the old one was stopped, and none started.
    const wrong = await run(['restart', '--json'], {
      cwd: p.dir,
      env: { ...p.env, EVENTDBX_MASTER_KEY: 'not-the-key' },
    });
    expect([wrong.code, wrong.stdout]).toEqual([1, '']);
    expect(wrong.stderr).toMatch(/^error: the master key does not match .*\[EDBX_ERR_WRONG_MASTER_KEY\]\n$/);
    const dek = await run(['restart'], { cwd: p.dir, env: { ...p.env, EVENTDBX_DEK: 'not-the-dek' } });
    expect(dek.code).toBe(1);
    expect(dek.stderr).toMatch(/\[EDBX_ERR_DEK_MISMATCH\]\n$/);
    // A config file gone: no development config with random keys is made over a running store.
    const config = path.join(p.dir, '.eventdbx.json');
    const saved = await readFile(config);
    await rm(config);
    try {
      const none = await p.cli(['restart', '--data-dir', p.dataDir]);
      expect(none.code).toBe(1);
      expect(none.stderr).toMatch(
        /no master key set: .*\.eventdbx\.json does not exist, .*or name the configuration with --config\) \[EDBX_ERR_CONFIG_KEYS_NOT_SET\]\n$/,
      );
      expect(existsSync(config)).toBe(false);
    } finally {
      await writeFile(config, saved, { mode: 0o600 });
    }
    expect(running(pid)).toBe(true);
    expect(await pidOf()).toBe(pid);
  });

  it('a restart that fails once the server is stopped says so, and how to start it (qa-ops #1)', async () => {
    const pid = (await pidOf())!;
    const { port } = JSON.parse(await readFile(path.join(p.dataDir, 'eventdbx.pid'), 'utf8')) as {
      port: number;
    };
    // The same port held by something else on another address of this machine.
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.2', () => resolve()));
    try {
      // Moving to that address: found before the stop (qa-today2 #5), the address named.
      const moving = await run(['restart', '--json'], {
        cwd: p.dir,
        env: { ...p.env, EVENTDBX_HOST: '127.0.0.2' },
      });
      expect([moving.code, moving.stdout]).toEqual([1, '']);
      expect(moving.stderr).toMatch(
        new RegExp(
          `^error: port ${port} on 127\\.0\\.0\\.2 is already in use.*\\[EDBX_ERR_PORT_IN_USE\\]\\n$`,
        ),
      );
      expect(running(pid)).toBe(true);
      // Moving to every interface: the running server's own hold on the port would answer a probe, so
      // only the new server, once the old one let go, can find it out.
      const r = await run(['restart', '--json'], { cwd: p.dir, env: { ...p.env, EVENTDBX_HOST: '0.0.0.0' } });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        new RegExp(
          `^error: the server \\(pid ${pid}\\) was stopped, but the new one did not start: port ${port} on 0\\.0\\.0\\.0 is already in use.*\\[EDBX_ERR_PORT_IN_USE\\]; ` +
            `no server runs for .* now: fix that, then run \`eventdbx start\` \\[EDBX_ERR_RESTART_FAILED\\]\\n$`,
        ),
      );
      expect(JSON.parse(r.stdout)).toEqual({
        restarted: false,
        stopped_pid: pid,
        started: false,
        data_dir: p.dataDir,
        code: 'EDBX_ERR_RESTART_FAILED',
        error: { code: 'EDBX_ERR_PORT_IN_USE', message: expect.stringContaining(String(port)) },
        start_command: 'eventdbx start',
      });
      expect(running(pid)).toBe(false);
    } finally {
      blocker.close();
    }
    const started = await p.cli(['start']);
    expect(started.code, started.stderr).toBe(0);
  });

  it('a restart that moves the server to another address says so, also back to the default (qa-today2 #2)', async () => {
    const moved = await run(['restart', '--json'], {
      cwd: p.dir,
      env: { ...p.env, EVENTDBX_HOST: '127.0.0.2' },
    });
    expect(moved.code, moved.stderr).toBe(0);
    expect(JSON.parse(moved.stdout).changed).toEqual({
      host: { from: '127.0.0.1', to: '127.0.0.2', source: 'environment EVENTDBX_HOST' },
    });
    // From a shell without the variable: back on loopback only, which remote clients would notice.
    const back = await p.cli(['restart']);
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout).toContain(
      'host changed: 127.0.0.2 -> 127.0.0.1 (EVENTDBX_HOST is not set: the default)',
    );
  });

  it('stop finishes gracefully even while a client has sent only part of a request', async () => {
    if (!(await pidOf()) || !running((await pidOf())!)) expect((await p.cli(['start'])).code).toBe(0);
    const pid = (await pidOf())!;
    const port = JSON.parse(await readFile(path.join(p.dataDir, 'eventdbx.pid'), 'utf8')).port as number;
    const issued = await p.cli(['token', 'generate', '--group', 'admin', '--user', 'half', '--json']);
    const token = JSON.parse(issued.stdout).token.token as string;
    const half = net.connect(port, '127.0.0.1');
    await new Promise((r) => half.once('connect', r));
    half.on('error', () => undefined);
    half.write(
      'POST /v1/aggregates/a/b/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
        `Authorization: Bearer ${token}\r\nContent-Length: 100\r\n\r\n{"event_`,
    );
    await new Promise((r) => setTimeout(r, 100)); // let the server read the headers
    const stopping = p.cli(['stop']);
    // While it finishes what is in flight (here, for up to 5 s), status says it is stopping.
    const pidFile = path.join(p.dataDir, 'eventdbx.pid');
    while (!(await readFile(pidFile, 'utf8').catch(() => '')).includes('stopping_since'))
      await new Promise((r) => setTimeout(r, 20));
    const during = await p.cli(['status']);
    expect(during.stdout).toMatch(/health\s+stopping/);
    expect(during.stderr).toMatch(/shutting down.*\[EDBX_ERR_SHUTTING_DOWN\]/);
    expect(during.code).toBe(1);
    const stopped = await stopping;
    expect(stopped.code).toBe(0);
    // Before: the server waited for the body until `stop` killed it after 15 s.
    expect(stopped.stderr).not.toMatch(/killing/);
    expect(running(pid)).toBe(false);
    half.destroy();
    expect((await p.cli(['start'])).code).toBe(0); // for the tests below
  });

  it('a stopped server is reported with its PID instead of hanging the CLI', async () => {
    const pid = (await pidOf())!;
    // Commands still go through the control channel of a server that answers.
    expect((await p.cli(['aggregate', 'list'])).code).toBe(0);
    process.kill(pid, 'SIGSTOP');
    try {
      for (const args of [
        ['status', '--json'],
        ['aggregate', 'list'],
      ]) {
        const t0 = Date.now();
        const r = await p.cli(args);
        expect(Date.now() - t0).toBeLessThan(15_000);
        expect(r.code, args.join(' ')).toBe(1);
        expect(r.stderr).toMatch(
          new RegExp(
            `^error: the server at PID ${pid} does not answer.*\\[EDBX_ERR_SERVER_NOT_ANSWERING\\]\n$`,
          ),
        );
        // The count is null when unknown, never a string in a number's place (qa-ops #9a); so is the
        // uptime, which only the server can tell (QA time #3): the PID file's start time is shown instead.
        if (args[0] === 'status')
          expect(JSON.parse(r.stdout)).toMatchObject({
            pid,
            events: null,
            uptime_seconds: null,
            started_at: JSON.parse(await readFile(path.join(p.dataDir, 'eventdbx.pid'), 'utf8')).started_at,
            health: 'not answering',
          });
      }
      const human = await p.cli(['status']);
      expect(human.stdout).toMatch(/^uptime_seconds\s+unknown \(the server did not say; see started_at\)$/m);
      expect(human.stdout).toMatch(/^started_at\s+\d{4}-\d\d-\d\dT[\d:.]+Z$/m);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    expect((await p.cli(['aggregate', 'list'])).code).toBe(0);
  }, 40_000);

  it('status shows the uptime the server says, not one from its PID file and this clock (QA time #3)', async () => {
    const pidFile = path.join(p.dataDir, 'eventdbx.pid');
    const saved = await readFile(pidFile, 'utf8');
    const info = JSON.parse(saved) as { port: number; started_at: string };
    // A CLI whose clock is a day behind the server's (or a server whose clock stepped after it started):
    // the start time it recorded is a day ahead. Before, status said uptime_seconds -86400.
    const ahead = new Date(Date.now() + 86_400_000).toISOString();
    await writeFile(pidFile, JSON.stringify({ ...info, started_at: ahead }) + '\n');
    try {
      const health = (await (await fetch(`http://127.0.0.1:${info.port}/health`)).json()) as {
        uptime_seconds: number;
      };
      const r = await p.cli(['status', '--json']);
      expect(r.code, r.stderr).toBe(0);
      const shown = JSON.parse(r.stdout) as { uptime_seconds: number; started_at: string };
      expect(shown.started_at).toBe(ahead);
      expect(shown.uptime_seconds).toBeGreaterThanOrEqual(health.uptime_seconds);
      expect(shown.uptime_seconds - health.uptime_seconds).toBeLessThanOrEqual(5);
      expect((await p.cli(['status'])).stdout).toMatch(/^uptime_seconds\s+\d+$/m);
    } finally {
      await writeFile(pidFile, saved);
    }
  });

  it('a restart without options keeps the running port and restriction (qa2-spec #2)', async () => {
    const strict = JSON.parse((await p.cli(['restart', '--restrict=strict', '--json'])).stdout);
    expect(strict.restrict).toBe('strict');
    // Before: the port was kept but the restriction went back to the default, loosening enforcement.
    const plain = await p.cli(['restart', '--json']);
    expect(plain.code, plain.stderr).toBe(0);
    expect(JSON.parse(plain.stdout)).toMatchObject({ port: strict.port, restrict: 'strict' });
    const status = JSON.parse((await p.cli(['status', '--json'])).stdout);
    // With the store's storage layout, from /health (qa-ops #5: the format version was invisible).
    expect(status).toMatchObject({
      running: true,
      port: strict.port,
      restrict: 'strict',
      layout: 2,
      problem: null,
    });
    expect((await p.cli(['status'])).stdout).toMatch(/^layout\s+2$/m);
    // An option given still wins; `--restrict` alone means true.
    const loose = JSON.parse((await p.cli(['restart', '--restrict', '--json'])).stdout);
    expect(loose).toMatchObject({ port: strict.port, restrict: 'true' });
  });

  it('start, restart, stop and destroy print JSON with --json', async () => {
    const old = (await pidOf())!;
    const restarted = await p.cli(['restart', '--json']);
    expect(restarted.code, restarted.stderr).toBe(0);
    const r = JSON.parse(restarted.stdout);
    expect(r).toMatchObject({ restarted: true, stopped_pid: old, started: true, data_dir: p.dataDir });
    expect(r.pid).toBe(await pidOf());
    const stopped = await p.cli(['stop', '--json']);
    expect(stopped.code).toBe(0);
    expect(JSON.parse(stopped.stdout)).toEqual({ stopped: true, pid: r.pid, data_dir: p.dataDir });
    expect(JSON.parse((await p.cli(['stop', '--json'])).stdout)).toMatchObject({ stopped: false, pid: null });
    const started = await p.cli(['start', '--json']);
    expect(started.code, started.stderr).toBe(0);
    expect(JSON.parse(started.stdout)).toMatchObject({
      started: true,
      pid: await pidOf(),
      port: r.port,
      restrict: 'true',
      log: path.join(p.dataDir, 'eventdbx.log'),
    });
    expect((await p.cli(['stop'])).code).toBe(0);
  });

  it('stop, status, restart and destroy manage the server of --data-dir', async () => {
    const other = path.join(p.dir, 'other');
    const port = await freePort();
    // On another loopback address (qa-ops #3): status used to ask 127.0.0.1, and the banner said localhost.
    const started = await run(['start', '--data-dir', other, '--port', String(port), '--json'], {
      cwd: p.dir,
      env: { ...p.env, EVENTDBX_HOST: '127.0.0.2' },
    });
    expect(started.code, started.stderr).toBe(0);
    const { pid, admin_token, notices } = JSON.parse(started.stdout);
    expect(admin_token.token).toMatch(/^edbx_/); // the one-time bootstrap token of a new store
    expect(notices.join('\n')).toContain(`http://127.0.0.2:${port}/v1/aggregates`);
    expect(notices.at(-1)).toMatch(
      new RegExp(`^EventDBX \\S+ listening on http://127\\.0\\.0\\.2:${port} \\(pid`),
    );
    expect(await pidOf(other)).toBe(pid);
    expect((await p.cli(['status'])).code).toBe(1); // the default data dir has no server
    const status = await p.cli(['status', '--data-dir', other, '--json']);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({
      running: true,
      pid,
      port,
      host: '127.0.0.2',
      health: 'ok',
      events: expect.any(Number),
    });
    const restarted = JSON.parse((await p.cli(['restart', '--data-dir', other, '--json'])).stdout);
    expect(restarted).toMatchObject({ stopped_pid: pid, port, data_dir: other });
    const stopped = await p.cli(['stop', '--data-dir', other]);
    expect(stopped.stdout).toBe(`stopped server ${restarted.pid}\n`);
    expect(running(restarted.pid)).toBe(false);
    const destroyed = await p.cli(['destroy', '--data-dir', other, '--yes', '--json']);
    expect(JSON.parse(destroyed.stdout)).toMatchObject({ destroyed: true, data_dir: other, config: null });
    expect(existsSync(other)).toBe(false);
    expect(existsSync(p.configPath)).toBe(true); // it belongs to the default data dir
    // Again: nothing is there, and it says so (it used to report a removal).
    const again = await p.cli(['destroy', '--data-dir', other, '--yes', '--json']);
    expect([again.code, JSON.parse(again.stdout).destroyed]).toEqual([0, false]);
  });
});

describe('the first start, without a config', () => {
  it('records the data dir and port it was given, so the next commands reach this server', async () => {
    const p = await project({ configure: false });
    const port = await freePort();
    const dataDir = path.join(p.dir, 'elsewhere');
    // The implicit ./.eventdbx.json (no --config, no EVENTDBX_CONFIG) is the one created.
    const env = { ...p.env };
    delete env.EVENTDBX_CONFIG;
    const cli = (args: string[]) => run(args, { cwd: p.dir, env });
    try {
      // A config named explicitly but missing is a mistake, not a reason to create a store.
      for (const named of [
        p.cli(['start', '--port', String(port)]),
        cli(['start', '--config', 'typo.json']),
      ]) {
        const r = await named;
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/no configuration at .*\[EDBX_ERR_CONFIG_MISSING\]/);
      }
      expect(existsSync(p.dataDir)).toBe(false);
      const started = await cli(['start', '--data-dir', dataDir, '--port', String(port)]);
      expect(started.code, started.stderr).toBe(0);
      expect(started.stdout).toContain('random keys (and this data dir and port)');
      const config = JSON.parse(await readFile(p.configPath, 'utf8'));
      expect(config).toMatchObject({ data_dir: dataDir, port });
      // The command start prints next mints a token the running server knows.
      const t = await cli(['token', 'generate', '--group', 'g', '--user', 'u', '--json']);
      expect(t.code, t.stderr).toBe(0);
      const token = JSON.parse(t.stdout).token.token as string;
      const res = await fetch(`http://127.0.0.1:${port}/v1/aggregates`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(res.status).toBe(200);
      expect(existsSync(p.dataDir)).toBe(false); // no second store in ./.eventdbx
    } finally {
      await cli(['stop']);
      await p.cleanup();
    }
  });
});

describe('status of a server whose writes failed', () => {
  it('shows health failing and exits 1 with the reason', async () => {
    const p = await project();
    // A stand-in answering /health as a server whose write failed does (this test process holds the PID).
    const fake = http.createServer((_req, res) => {
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          status: 'failing',
          events: 7,
          code: 'EDBX_ERR_STORE_IO',
          detail: 'writes are refused until `eventdbx restart`: no space left on device',
        }),
      );
    });
    const port = await new Promise<number>((r) =>
      fake.listen(0, '127.0.0.1', () => r((fake.address() as net.AddressInfo).port)),
    );
    try {
      await mkdir(p.dataDir, { recursive: true });
      await writeFile(
        path.join(p.dataDir, 'eventdbx.pid'),
        JSON.stringify({
          pid: process.pid,
          port,
          started_at: new Date().toISOString(),
          restrict: 'true',
          version: 'x',
          data_dir: p.dataDir,
          process_start: processFacts(process.pid)?.start,
        }),
      );
      const r = await p.cli(['status']);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/health\s+failing/);
      expect(r.stderr).toBe(
        'error: writes are refused until `eventdbx restart`: no space left on device [EDBX_ERR_STORE_IO]\n',
      );
      // Clients get a generic detail; the operator running status gets the cause its log holds.
      const log = path.join(p.dataDir, 'eventdbx.log');
      const line = (o: object) => JSON.stringify({ time: 1, pid: 1, ...o }) + '\n';
      await writeFile(
        log,
        line({ level: 50, code: 'EDBX_ERR_STORE_IO', msg: 'an older failure' }) +
          line({ level: 50, code: 'EDBX_ERR_STORE_IO', msg: 'IO error: /srv/d/000004.log: File too large' }) +
          'not json\n' +
          line({ level: 40, code: 'EDBX_ERR_STORE_IO', msg: 'a warning, not the failure' }) +
          line({ level: 30, msg: 'request' }),
      );
      const told = await p.cli(['status']);
      expect(told.stderr).toBe(
        'error: writes are refused until `eventdbx restart`: no space left on device; its log says: ' +
          `IO error: /srv/d/000004.log: File too large (${log}) [EDBX_ERR_STORE_IO]\n`,
      );
    } finally {
      fake.close();
      await p.cleanup();
    }
  });
});

describe('a start whose data dir cannot be written', () => {
  it('is refused with a coded error naming the dir', async () => {
    const p = await project();
    try {
      await writeFile(path.join(p.dir, 'a-file'), 'not a directory');
      const dataDir = path.join(p.dir, 'a-file', 'db');
      const r = await p.cli(['start', '--data-dir', dataDir, '--port', String(await freePort())]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        `error: cannot write in the data dir ${dataDir} (ENOTDIR): make it writable by this user (and the disk not full), or choose another with --data-dir [EDBX_ERR_DATA_DIR_NOT_WRITABLE]\n`,
      );
    } finally {
      await p.cleanup();
    }
  });
});

describe('a start that fails once it listens (a damaged backup.json)', () => {
  it('says why, exits 1 and leaves no server, PID file or socket behind, daemon or foreground', async () => {
    const p = await project();
    try {
      expect((await p.cli(applyArgs('patient', 'p-1', 'admitted'))).code).toBe(0);
      const marker = path.join(p.dataDir, 'backup.json');
      for (const mode of [[], ['--foreground']]) {
        await writeFile(marker, '{not json');
        const port = await freePort();
        const r = await p.cli(['start', '--port', String(port), ...mode]);
        expect(r.code, mode.join(' ')).toBe(1);
        expect(r.stderr).toContain(
          `error: integrity check failed for ${marker}: it is not the JSON a backup writes;`,
        );
        expect(r.stderr).toContain('[EDBX_ERR_INTEGRITY]');
        expect(existsSync(path.join(p.dataDir, 'eventdbx.pid'))).toBe(false);
        expect(existsSync(path.join(p.dataDir, 'control.sock'))).toBe(false);
        expect(await serverPid(p.dataDir)).toBeUndefined();
        await expect(fetch(`http://127.0.0.1:${port}/health`)).rejects.toThrow();
      }
    } finally {
      await p.cleanup();
    }
  });
});

describe('the log tail a failed start shows', () => {
  it('reads only the end of a long log, and nothing of a missing one', async () => {
    const p = await project();
    try {
      const log = path.join(p.dir, 'eventdbx.log');
      const line = (i: number) => `{"level":30,"msg":"line ${i}"}\n`;
      await writeFile(log, Array.from({ length: 50_000 }, (_, i) => line(i)).join(''));
      const tail = await lastBytes(log, 4096);
      expect(Buffer.byteLength(tail)).toBe(4096);
      expect(tail.endsWith(line(49_999))).toBe(true);
      expect(await lastBytes(path.join(p.dir, 'missing.log'), 4096)).toBe('');
    } finally {
      await p.cleanup();
    }
  });
});

describe('a daemon whose `start` goes away while it starts (chaos QA #4)', () => {
  it('keeps running, and says in its log how to get the admin token nobody saw', async () => {
    const p = await project();
    const port = await freePort();
    let daemon: number | undefined;
    try {
      const launcher = spawn(process.execPath, [MAIN, 'start', '--port', String(port)], {
        cwd: p.dir,
        env: p.env,
        stdio: 'ignore',
      });
      // Freeze the daemon as soon as it exists, kill its launcher, then let it go on.
      const deadline = Date.now() + 20_000;
      while (daemon === undefined) {
        if (Date.now() > deadline) throw new Error('the daemon never appeared');
        let children = '';
        try {
          children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(launcher.pid)], { encoding: 'utf8' });
        } catch {
          // ps exits 1 while the launcher has no child yet.
        }
        daemon = Number(children.trim().split('\n')[0]) || undefined;
        if (daemon === undefined) await new Promise((r) => setTimeout(r, 5));
      }
      process.kill(daemon, 'SIGSTOP');
      launcher.kill('SIGKILL');
      await new Promise((r) => launcher.once('exit', r));
      process.kill(daemon, 'SIGCONT');
      const log = path.join(p.dataDir, 'eventdbx.log');
      const until = Date.now() + 20_000;
      while (!(await readFile(log, 'utf8').catch(() => '')).includes('was not shown')) {
        if (Date.now() > until) throw new Error(`no notice in the log:\n${await readFile(log, 'utf8')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const status = await p.cli(['status', '--json']);
      expect(status.code, status.stderr).toBe(0);
      expect(JSON.parse(status.stdout)).toMatchObject({ running: true, pid: daemon });
      const text = await readFile(log, 'utf8');
      expect(text).not.toMatch(/ERR_IPC_CHANNEL_CLOSED/);
      // One JSON line of the log, at warn level, like the server's own (QA-comp #10).
      const notice = jsonLines(text).find((l) => String(l.msg).includes('was not shown'));
      expect(notice).toMatchObject({
        level: 40,
        time: expect.any(Number),
        pid: daemon,
        token_id: expect.stringMatching(/^edbx_/),
        msg: expect.stringMatching(
          /^the one-time admin token edbx_[\w-]+ was not shown: .*`eventdbx token generate --group admin --user <you>`$/,
        ),
      });
      // The token itself is in no file.
      expect(text).not.toMatch(/edbx_[A-Za-z0-9_-]{43}/);
      expect((await p.cli(['stop'])).code).toBe(0);
    } finally {
      if (daemon !== undefined && running(daemon)) process.kill(daemon, 'SIGKILL');
      await p.cleanup();
    }
  }, 60_000);
});

/** Every line of a daemon's log, each parsed as JSON (a line that is not JSON fails the test). */
function jsonLines(text: string): Array<Record<string, unknown>> {
  return text
    .trim()
    .split('\n')
    .map((line, i) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        throw new Error(`log line ${i + 1} is not JSON: ${line}`);
      }
    });
}

describe('what the daemon writes to its log besides the server is JSON lines too (QA-comp #10)', () => {
  it('the warning about a config file others can read: text on the terminal, a warn line in the log', async () => {
    const p = await project();
    try {
      await chmod(p.configPath, 0o644);
      const started = await p.cli(['start', '--port', String(await freePort())]);
      expect(started.code, started.stderr).toBe(0);
      const warning = `${p.configPath} holds keys and others can read it (mode 0644): run \`chmod 600 ${p.configPath}\``;
      expect(started.stderr).toContain(`warning: ${warning}\n`);
      const lines = jsonLines(await readFile(path.join(p.dataDir, 'eventdbx.log'), 'utf8'));
      expect(lines.filter((l) => l.msg === warning)).toEqual([
        expect.objectContaining({ level: 40, time: expect.any(Number), pid: expect.any(Number) }),
      ]);
      expect((await p.cli(['stop'])).code).toBe(0);
    } finally {
      await p.cli(['stop']);
      await p.cleanup();
    }
  }, 60_000);

  it('the error that stops a daemon from starting: an error line with its code in the log', async () => {
    const p = await project();
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    try {
      const port = (taken.address() as net.AddressInfo).port;
      const started = await p.cli(['start', '--port', String(port)]);
      expect(started.code).toBe(1);
      expect(started.stderr).toContain('EDBX_ERR_PORT_IN_USE');
      // The daemon writes it once it has told its launcher, which may already have exited.
      const log = path.join(p.dataDir, 'eventdbx.log');
      const until = Date.now() + 20_000;
      while (!(await readFile(log, 'utf8').catch(() => '')).includes('EDBX_ERR_PORT_IN_USE')) {
        if (Date.now() > until) throw new Error(`no error in the log:\n${await readFile(log, 'utf8')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const lines = jsonLines(await readFile(log, 'utf8'));
      expect(lines.at(-1)).toMatchObject({
        level: 50,
        time: expect.any(Number),
        code: 'EDBX_ERR_PORT_IN_USE',
        msg: expect.stringContaining(String(port)),
      });
    } finally {
      await new Promise((r) => taken.close(r));
      await p.cleanup();
    }
  }, 60_000);
});
