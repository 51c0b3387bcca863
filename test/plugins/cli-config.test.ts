/**
 * Plugin configuration through the real CLI (no server: the configuration is recorded in the store):
 * what a re-run keeps, and what is refused at configuration time with which exit code.
 */
import { writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Project, applyArgs, project } from '../helpers/cli.js';

let p: Project;
beforeAll(async () => {
  p = await project();
});
afterAll(async () => {
  await p.cleanup();
});

async function listed(name: string, in_: Project = p): Promise<any> {
  const r = await in_.cli(['plugin', 'list', '--json']);
  expect(r.code).toBe(0);
  return (JSON.parse(r.stdout) as { plugins: any[] }).plugins.find((x) => x.name === name);
}

describe('re-running a plugin command keeps the settings it omits (QA item 4)', () => {
  it('http: --disable with only the endpoint keeps the headers; --no-header removes them', async () => {
    const url = 'http://127.0.0.1:9/hook';
    expect((await p.cli(['plugin', 'http', '--endpoint', url, '--header', 'X-Api-Key=k'])).code).toBe(0);
    const disabled = await p.cli(['plugin', 'http', '--endpoint', url, '--disable']);
    expect(disabled.stdout).toContain('configuration kept');
    expect(await listed('http')).toMatchObject({
      enabled: false,
      settings: { headers: { 'X-Api-Key': '***' } },
    });
    expect((await p.cli(['plugin', 'http', '--timeout', '500'])).code).toBe(0);
    expect(await listed('http')).toMatchObject({
      enabled: true,
      settings: { endpoint: url, headers: { 'X-Api-Key': '***' } },
      delivery: { timeout_ms: 500 },
    });
    expect((await p.cli(['plugin', 'http', '--no-header'])).code).toBe(0);
    expect((await listed('http')).settings.headers).toEqual({});
  });

  it('tcp, json and log keep what a re-run omits', async () => {
    expect((await p.cli(['plugin', 'tcp', '--host', '127.0.0.1', '--port', '5170'])).code).toBe(0);
    expect((await p.cli(['plugin', 'tcp', '--port', '5171'])).code).toBe(0);
    expect((await listed('tcp')).settings).toEqual({ host: '127.0.0.1', port: 5171 });
    expect((await p.cli(['plugin', 'json', '--path', 'out.json', '--pretty'])).code).toBe(0);
    expect((await p.cli(['plugin', 'json', '--disable'])).code).toBe(0);
    expect((await listed('json')).settings.pretty).toBe(true);
    expect((await p.cli(['plugin', 'json', '--no-pretty'])).code).toBe(0);
    expect((await listed('json')).settings.pretty).toBe(false);
    expect((await p.cli(['plugin', 'log', '--level', 'info', '--template', '{id}'])).code).toBe(0);
    expect((await p.cli(['plugin', 'log', '--level', 'warn'])).code).toBe(0);
    expect((await listed('log')).settings).toEqual({ level: 'warn', template: '{id}' });
    expect((await p.cli(['plugin', 'log', '--no-template'])).code).toBe(0);
    expect((await listed('log')).settings).toEqual({ level: 'warn' });
  });
});

describe('targets that cannot work are refused when configuring (QA item 5)', () => {
  it('refuses each with exit 1, one line naming the value and what to use, and records nothing', async () => {
    const q = await project();
    await writeFile(path.join(q.dir, 'afile'), 'x');
    execFileSync('mkfifo', [path.join(q.dir, 'apipe')]);
    const cases: Array<[string[], string]> = [
      [['postgres', '--connection', 'postgres://u:p@127.0.0.1:54x2/db'], 'port "54x2"'],
      [['json', '--path', 'afile/out.jsonl'], 'is a file, not a directory'],
      [['json', '--path', '.'], 'is a directory'],
      [['json', '--path', ''], '--path "" is empty'],
      [['sqlite', '--path', '.'], 'is a directory'],
      [['sqlite', '--path', 'apipe'], 'apipe" is a named pipe, not a regular file'],
      [['json', '--path', 'apipe'], 'is a named pipe, not a regular file'],
      [['csv', '--output-dir', 'afile/csv'], 'is a file, not a directory'],
      [['csv', '--output-dir', 'afile'], 'is a file, not a directory'],
      [['tcp', '--host', 'a b', '--port', '5170'], '--host "a b" is not a host name'],
      [['tcp', '--host', 'http://x', '--port', '5170'], '--host "http://x" is not a host name'],
    ];
    for (const [args, says] of cases) {
      const r = await q.cli(['plugin', ...args]);
      expect({ args, code: r.code }).toEqual({ args, code: 1 });
      expect(r.stderr).toContain('EDBX_ERR_PLUGIN_CONFIG_INVALID');
      expect(r.stderr).toContain(says);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(JSON.parse((await q.cli(['plugin', 'list', '--json'])).stdout).plugins).toEqual([]);
    await q.cleanup();
  });
});

describe('plugin command checks and output (QA item 8)', () => {
  it('missing targets are usage errors (exit 2); inverted backoff and unknown placeholders are refused', async () => {
    const q = await project();
    try {
      const pgMissing = await q.cli(['plugin', 'postgres']);
      expect(pgMissing.code).toBe(2);
      expect(pgMissing.stderr).toContain("required option '--connection'");
      const tcpMissing = await q.cli(['plugin', 'tcp', '--port', '5170']);
      expect(tcpMissing.code).toBe(2);
      expect(tcpMissing.stderr).toContain("required option '--host'");
      const url = 'http://127.0.0.1:9/hook';
      const inverted = await q.cli([
        'plugin',
        'http',
        '--endpoint',
        url,
        '--backoff',
        '5000',
        '--backoff-max',
        '100',
      ]);
      expect(inverted.code).toBe(1);
      expect(inverted.stderr).toContain('--backoff 5000 is longer than --backoff-max 100');
      const foo = await q.cli(['plugin', 'log', '--level', 'info', '--template', '{id} {foo}']);
      expect(foo.code).toBe(1);
      expect(foo.stderr).toContain('unknown placeholder {foo}: use {aggregate}, {id}, {event}, {version}');
      expect(JSON.parse((await q.cli(['plugin', 'list', '--json'])).stdout).plugins).toEqual([]);

      expect((await q.cli(['plugin', 'json', '--path', 'out.jsonl', '--timeout', '30000'])).code).toBe(0);
      expect((await q.cli(['plugin', 'http', '--endpoint', url])).code).toBe(0);
      expect((await q.cli(['plugin', 'log', '--level', 'info'])).code).toBe(0);
      // A file write can hang too (a network mount): its limit is shown; the log plugin waits on nothing.
      expect((await listed('json', q)).delivery).toHaveProperty('timeout_ms', 30_000);
      expect((await listed('http', q)).delivery).toHaveProperty('timeout_ms', 10_000);
      expect((await listed('log', q)).delivery).not.toHaveProperty('timeout_ms');
    } finally {
      await q.cleanup();
    }
  });
});

describe('plugin replay output (QA item 9)', () => {
  it('states positions, not a count of events that system events inflate', async () => {
    const q = await project();
    try {
      expect((await q.cli(applyArgs('patient', 'p-1', 'patient-added', ['a=1']))).code).toBe(0);
      expect((await q.cli(['plugin', 'json', '--path', 'out.jsonl'])).code).toBe(0);
      const r = await q.cli(['plugin', 'replay', 'json', '--from', '1']);
      expect(r.code).toBe(0);
      // One user event, the rest audit entries: the old count said "(3 event(s))".
      const head =
        /\(positions 1 to (\d+); system events such as audit entries among them are skipped\)/.exec(r.stdout);
      expect(Number(head?.[1])).toBeGreaterThan(1);
      expect(r.stdout).not.toContain('event(s)');
    } finally {
      await q.cleanup();
    }
  });
});
