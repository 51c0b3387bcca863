/**
 * Server lifecycle commands from the CLI against a real daemon: failed restarts keep the server up,
 * an unresponsive server is reported instead of hanging, `--json` and `--data-dir` everywhere.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Project, freePort, project } from './helpers/cli.js';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('server lifecycle from the CLI', () => {
  let p: Project;
  const pidOf = async (dataDir = p.dataDir): Promise<number | undefined> => {
    try {
      return JSON.parse(await readFile(path.join(dataDir, 'eventdbx.pid'), 'utf8')).pid as number;
    } catch {
      return undefined;
    }
  };

  beforeAll(async () => {
    p = await project();
    const r = await p.cli(['config', '--port', String(await freePort())]);
    if (r.code !== 0) throw new Error(r.stderr);
  });
  afterAll(async () => {
    for (const dir of [p.dataDir, path.join(p.dir, 'other')]) {
      const pid = await pidOf(dir);
      if (pid && alive(pid)) {
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
    expect(bogus.code).toBe(2);
    expect(bogus.stderr).toMatch(/--restrict.*\[EDBX_ERR_USAGE\]/);
    const port = await p.cli(['restart', '--port', '99999']);
    expect(port.code).toBe(1);
    expect(port.stderr).toMatch(/--port.*\[EDBX_ERR_INVALID_ARGUMENT\]/);
    expect(alive(pid)).toBe(true);
    expect(await pidOf()).toBe(pid);
  });

  it('a stopped server is reported with its PID instead of hanging the CLI', async () => {
    const pid = (await pidOf())!;
    // Commands still go through the control channel of a server that answers.
    expect((await p.cli(['aggregate', 'list'])).code).toBe(0);
    process.kill(pid, 'SIGSTOP');
    try {
      for (const args of [['status'], ['aggregate', 'list']]) {
        const t0 = Date.now();
        const r = await p.cli(args);
        expect(Date.now() - t0).toBeLessThan(15_000);
        expect(r.code, args.join(' ')).toBe(1);
        expect(r.stderr).toMatch(
          new RegExp(
            `^error: the server at PID ${pid} does not answer.*\\[EDBX_ERR_SERVER_NOT_ANSWERING\\]\n$`,
          ),
        );
      }
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    expect((await p.cli(['aggregate', 'list'])).code).toBe(0);
  }, 40_000);
});
