/**
 * Plugin configuration through the real CLI (no server: the configuration is recorded in the store):
 * what a re-run keeps, and what is refused at configuration time with which exit code.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Project, project } from '../helpers/cli.js';

let p: Project;
beforeAll(async () => {
  p = await project();
});
afterAll(async () => {
  await p.cleanup();
});

async function listed(name: string): Promise<any> {
  const r = await p.cli(['plugin', 'list', '--json']);
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
