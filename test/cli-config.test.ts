/**
 * `eventdbx config` end to end: keys may live only in the environment (never written to the file),
 * and a setting a running server read at start says that a restart applies it.
 */
import { chmod, readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Project, type RunningServer, freePort, project, run, startServer } from './helpers/cli.js';

describe('config', () => {
  let p: Project;
  let server: RunningServer | undefined;
  beforeAll(async () => {
    p = await project({ configure: false });
  });
  afterAll(async () => {
    await server?.stop();
    await p?.cleanup();
  });

  it('a first config takes the keys from the environment and keeps them out of the file', async () => {
    const env = { ...p.env, EVENTDBX_MASTER_KEY: 'env-master', EVENTDBX_DEK: 'env-dek' };
    const port = await freePort();
    const r = await run(['config', '--port', String(port)], { cwd: p.dir, env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const file = await readFile(p.configPath, 'utf8');
    expect(JSON.parse(file)).toEqual({ port });
    expect(file).not.toMatch(/env-master|env-dek/);
    const applied = await run(
      ['aggregate', 'apply', '--aggregate', 'a', '--aggregate-id', '1', '--event', 'e'],
      {
        cwd: p.dir,
        env,
      },
    );
    expect(applied.code, applied.stderr).toBe(0);
    // Without them in the environment, every command says where the keys must come from.
    for (const args of [
      ['aggregate', 'list'],
      ['start', '--foreground'],
    ]) {
      const missing = await p.cli(args);
      expect(missing.code, args.join(' ')).toBe(1);
      expect(missing.stderr).toMatch(
        /^error: no master key set: .*\.eventdbx\.json does not hold it, so set EVENTDBX_MASTER_KEY in the environment .*\[EDBX_ERR_CONFIG_KEYS_NOT_SET\]\n$/,
      );
    }
    const onlyMaster = await run(['aggregate', 'list'], {
      cwd: p.dir,
      env: { ...p.env, EVENTDBX_MASTER_KEY: 'env-master' },
    });
    expect(onlyMaster.stderr).toMatch(
      /no data encryption key set: .*EVENTDBX_DEK.*\[EDBX_ERR_CONFIG_KEYS_NOT_SET\]/,
    );
  });

  it('changing the port while a server runs says that a restart applies it', async () => {
    const r = await p.cli(['config', '--master-key', 'env-master', '--dek', 'env-dek']);
    expect(r.code, r.stderr).toBe(0);
    server = await startServer(p);
    const port = await freePort();
    const changed = await p.cli(['config', '--port', String(port)]);
    expect(changed.code, changed.stderr).toBe(0);
    // This server was started with --port, which a plain restart keeps: the command says so.
    expect(changed.stdout).toMatch(
      new RegExp(
        `the server running for .* \\(pid \\d+\\) uses the new settings after \`eventdbx restart --port ${port}\` \\(its start was given --port ${server.port}, which a plain restart keeps\\)`,
      ),
    );
    const next = await freePort();
    const json = await p.cli(['config', '--port', String(next), '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({
      saved: true,
      restart_needed: true,
      restart_command: `eventdbx restart --port ${next}`,
    });
    const keysOnly = await p.cli(['config', '--dek', 'rotated-dek', '--json']);
    expect(JSON.parse(keysOnly.stdout)).toMatchObject({ saved: true, restart_needed: false });
    // The value the server already runs with (here the default) needs no restart.
    const same = await p.cli([
      'config',
      '--memory-threshold',
      '10000',
      '--port',
      String(server.port),
      '--json',
    ]);
    expect(JSON.parse(same.stdout)).toMatchObject({ saved: true, restart_needed: false });
  });
});

describe('a config file holding keys that others can read', () => {
  it('is used, with a warning that says how to fix it', async () => {
    const p = await project();
    try {
      await chmod(p.configPath, 0o644);
      const loose = await p.cli(['aggregate', 'list']);
      expect(loose.code).toBe(0);
      expect(loose.stderr).toBe(
        `warning: ${p.configPath} holds keys and others can read it (mode 0644): run \`chmod 600 ${p.configPath}\`\n`,
      );
      await chmod(p.configPath, 0o600);
      expect((await p.cli(['aggregate', 'list'])).stderr).toBe('');
    } finally {
      await p.cleanup();
    }
  });
});
