/**
 * The time-interval environment variables — `EVENTDBX_STREAM_HEARTBEAT_MS`, `EVENTDBX_DATA_DIR_CHECK_MS`
 * and `EVENTDBX_PROGRESS_INTERVAL_MS` — are read and checked with the other `EVENTDBX_*` variables
 * (QA time findings 5 and 6). They used to fall back to their defaults without a word on `10s`, `abc`,
 * `-5` or a number out of range, took `1e3` for 1000, and a heartbeat over 2^31−1 ms became a heartbeat
 * every millisecond (Node's `setInterval`) on every open stream. Now a bad value is refused as the
 * server or the command starts, with EDBX_ERR_CONFIG_INVALID naming the variable, its unit and range.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import {
  type CliResult,
  MAIN,
  type Project,
  freePort,
  outcomeOf,
  project,
  run,
  running,
  serverPid,
} from './helpers/cli.js';
import { expectCode } from './helpers/expect.js';

const VARIABLES = [
  {
    name: 'EVENTDBX_STREAM_HEARTBEAT_MS',
    key: 'streamHeartbeatMs',
    min: 100,
    max: 3_600_000,
    fallback: 15_000,
    outOfRange: ['99', '3600001', '3000000000', '99999999999999999999'],
  },
  {
    name: 'EVENTDBX_DATA_DIR_CHECK_MS',
    key: 'dataDirCheckMs',
    min: 100,
    max: 60_000,
    fallback: 1_000,
    outOfRange: ['0', '99', '60001', '600000'],
  },
  {
    name: 'EVENTDBX_PROGRESS_INTERVAL_MS',
    key: 'progressIntervalMs',
    min: 0,
    max: 3_600_000,
    fallback: 10_000,
    outOfRange: ['3600001'],
  },
] as const;

const NOT_WHOLE = ['10s', '30s', 'abc', '-5', '-1', '1e3', '1.5', '0x10', '+5', ' 100'];

const none = { EVENTDBX_CONFIG: '/nonexistent/.eventdbx.json' };

describe('the time-interval variables in the configuration (QA time #5, #6)', () => {
  it('have their defaults, and take a whole number of milliseconds in their range', async () => {
    const defaults = await loadConfig(undefined, none);
    for (const v of VARIABLES) {
      expect(defaults[v.key], v.name).toBe(v.fallback);
      for (const n of [v.min, v.max, v.fallback]) {
        const c = await loadConfig(undefined, { ...none, [v.name]: String(n) });
        expect(c[v.key], `${v.name}=${n}`).toBe(n);
      }
      // Empty is unset, as for the other numeric variables.
      expect((await loadConfig(undefined, { ...none, [v.name]: '' }))[v.key]).toBe(v.fallback);
    }
  });

  it('refuse anything else, naming the variable, its unit and its range', async () => {
    for (const v of VARIABLES) {
      const range = `use ${v.min} to ${v.max} (milliseconds)`;
      for (const bad of NOT_WHOLE) {
        const e = await expectCode(
          loadConfig(undefined, { ...none, [v.name]: bad }),
          'EDBX_ERR_CONFIG_INVALID',
        );
        expect(e.message).toBe(
          `configuration environment ${v.name} is invalid: ${JSON.stringify(bad)} is not a whole number; ${range}`,
        );
      }
      for (const bad of v.outOfRange) {
        const e = await expectCode(
          loadConfig(undefined, { ...none, [v.name]: bad }),
          'EDBX_ERR_CONFIG_INVALID',
        );
        expect(e.message).toBe(
          `configuration environment ${v.name} is invalid: "${bad}" is out of range; ${range}`,
        );
      }
    }
  });
});

/** `eventdbx …args` with `env`; killed after 20 s if it is still running then (a server that started). */
async function cli(p: Project, args: readonly string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  const child = spawn(process.execPath, [MAIN, ...args], { cwd: p.dir, env: { ...p.env, ...env } });
  child.stdin.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  try {
    return await outcomeOf(child);
  } finally {
    clearTimeout(timer);
  }
}

const refusal = (name: string, value: string, reason: string) =>
  `error: configuration environment ${name} is invalid: "${value}" ${reason} [EDBX_ERR_CONFIG_INVALID]\n`;

describe('a bad time-interval variable stops the start or the command (QA time #5, #6)', () => {
  let p: Project;
  let port: number;
  const pidFile = () => path.join(p.dataDir, 'eventdbx.pid');

  beforeAll(async () => {
    p = await project();
    port = await freePort();
    const r = await p.cli(['config', '--port', String(port)]);
    if (r.code !== 0) throw new Error(r.stderr);
  });
  afterAll(async () => {
    const pid = await serverPid(p.dataDir);
    if (pid && running(pid)) process.kill(pid, 'SIGKILL');
    await p.cleanup();
  });

  it('a heartbeat over the range (a flood of 1 ms heartbeats before) is refused by start, daemon or foreground', async () => {
    const huge = { EVENTDBX_STREAM_HEARTBEAT_MS: '3000000000' };
    const reason = 'is out of range; use 100 to 3600000 (milliseconds)';
    for (const args of [['start'], ['start', '--foreground']]) {
      const r = await cli(p, args, huge);
      expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }, args.join(' ')).toEqual({
        code: 1,
        stdout: '',
        stderr: refusal('EVENTDBX_STREAM_HEARTBEAT_MS', '3000000000', reason),
      });
      expect(existsSync(pidFile())).toBe(false);
    }
  }, 60_000);

  it('a data-dir check of `5s` is refused by start, and by restart before it stops the server', async () => {
    const reason = 'is not a whole number; use 100 to 60000 (milliseconds)';
    const r = await cli(p, ['start', '--foreground'], { EVENTDBX_DATA_DIR_CHECK_MS: '5s' });
    expect([r.code, r.stderr]).toEqual([1, refusal('EVENTDBX_DATA_DIR_CHECK_MS', '5s', reason)]);
    expect(existsSync(pidFile())).toBe(false);

    const started = await p.cli(['start']);
    expect(started.code, started.stderr).toBe(0);
    const pid = await serverPid(p.dataDir);
    try {
      const restart = await cli(p, ['restart'], { EVENTDBX_DATA_DIR_CHECK_MS: '5s' });
      expect([restart.code, restart.stderr]).toEqual([
        1,
        refusal('EVENTDBX_DATA_DIR_CHECK_MS', '5s', reason),
      ]);
      expect(running(pid!)).toBe(true);
      expect(await serverPid(p.dataDir)).toBe(pid);
    } finally {
      expect((await p.cli(['stop'])).code).toBe(0);
    }
  }, 60_000);

  it('a progress interval of `60s` or `-1` is refused as the command starts, before it does anything', async () => {
    for (const [value, reason] of [
      ['60s', 'is not a whole number; use 0 to 3600000 (milliseconds)'],
      ['-1', 'is not a whole number; use 0 to 3600000 (milliseconds)'],
      ['3600001', 'is out of range; use 0 to 3600000 (milliseconds)'],
    ] as const) {
      const r = await run(['aggregate', 'verify'], {
        cwd: p.dir,
        env: { ...p.env, EVENTDBX_PROGRESS_INTERVAL_MS: value },
      });
      expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }, value).toEqual({
        code: 1,
        stdout: '',
        stderr: refusal('EVENTDBX_PROGRESS_INTERVAL_MS', value, reason),
      });
    }
  }, 60_000);
});
