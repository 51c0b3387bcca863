/**
 * A config file that cannot be written (QA qa2-ops item 5): `config --master-key` re-wrapped the store,
 * then failed to write the file with EDBX_ERR_INTERNAL, leaving the new keys in plaintext in a temp
 * file beside it. Now the file is written whole before the store changes (on a full disk too: qa-full
 * #2), a failed write removes its temp file and is EDBX_ERR_CONFIG_WRITE, and a write failing after
 * the store took a new key says how to go on (without quoting the key).
 */
import { execFileSync, spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, chmod, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { err, isEventDbxError } from '../src/core/errors.js';
import { MAIN, applyArgs, outcomeOf, project, run, startServer, type Project } from './helpers/cli.js';
import { tempDirs } from './helpers/temp.js';

const fail = vi.hoisted(() => ({ write: false }));
vi.mock('../src/config/config.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/config/config.js')>();
  return {
    ...real,
    // The file's rename fails (after the store took the change).
    prepareConfigFile: async (file: string, values: Parameters<typeof real.prepareConfigFile>[1]) => {
      const prepared = await real.prepareConfigFile(file, values);
      if (!fail.write) return prepared;
      return {
        ...prepared,
        async commit() {
          await prepared.discard();
          throw err('EDBX_ERR_CONFIG_WRITE', { path: file, reason: 'EPERM: operation not permitted' });
        },
      };
    },
  };
});
const { writeConfigFile } =
  await vi.importActual<typeof import('../src/config/config.js')>('../src/config/config.js');
const { configCommand } = await import('../src/cli/config-command.js');

const tempDir = tempDirs('edbx-cfgw-');
const temps = async (dir: string) => (await readdir(dir)).filter((n) => n.endsWith('.tmp'));

describe('writeConfigFile (qa2-ops #5)', () => {
  it('a failed write removes its temp file (it holds the keys) and is EDBX_ERR_CONFIG_WRITE', async () => {
    const dir = await tempDir();
    // The rename fails: the target is a directory that is not empty.
    const target = path.join(dir, 'c.json');
    await mkdir(path.join(target, 'x'), { recursive: true });
    const e = await writeConfigFile(target, { master_key: 'new-secret-mk', dek: 'new-secret-dek' }).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(isEventDbxError(e, 'EDBX_ERR_CONFIG_WRITE'), String(e)).toBe(true);
    expect((e as Error).message).toContain(target);
    expect((e as Error).message).not.toContain('new-secret');
    expect(await temps(dir)).toEqual([]);
  });

  it('removes temp files left by a config process that was killed mid-write', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'c.json');
    const dead = Number(execFileSync(process.execPath, ['-p', 'process.pid']).toString().trim());
    await writeFile(path.join(dir, `.c.json.${dead}.tmp`), '{"master_key":"leaked"}', { mode: 0o600 });
    await writeFile(path.join(dir, '.other.json.123.tmp'), 'not ours');
    await writeConfigFile(file, { port: 7071 });
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ port: 7071 });
    expect(await temps(dir)).toEqual(['.other.json.123.tmp']);
  });
});

/** Make `dir` unwritable (chmod; as root, chattr +i); undefined when this machine cannot. */
async function lock(dir: string): Promise<(() => Promise<void>) | undefined> {
  const writable = () =>
    access(dir, constants.W_OK).then(
      () =>
        writeFile(path.join(dir, '.probe'), '').then(
          () => rm(path.join(dir, '.probe')).then(() => true),
          () => false,
        ),
      () => false,
    );
  await chmod(dir, 0o555);
  if (!(await writable())) return () => chmod(dir, 0o755);
  await chmod(dir, 0o755);
  try {
    execFileSync('chattr', ['+i', dir], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  const unlock = async () => void execFileSync('chattr', ['-i', dir], { stdio: 'ignore' });
  if (await writable()) {
    await unlock();
    return undefined;
  }
  return unlock;
}

describe('config --master-key with a config file that cannot be written (qa2-ops #5)', () => {
  let p: Project;
  let conf: string;
  let configPath: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    p = await project({ configure: false });
    // The config in a directory of its own (made unwritable below); the data dir elsewhere.
    conf = path.join(p.dir, 'conf');
    await mkdir(conf);
    configPath = path.join(conf, 'c.json');
    env = { ...p.env, EVENTDBX_CONFIG: configPath };
    const dataDir = path.join(p.dir, 'data');
    const r = await run(['config', '--master-key', 'old-mk', '--dek', 'old-dek', '--data-dir', dataDir], {
      cwd: p.dir,
      env,
    });
    expect(r.code, r.stderr).toBe(0);
    const a = await run(applyArgs('patient', 'p-1', 'admitted', ['ward=3']), { cwd: p.dir, env });
    expect(a.code, a.stderr).toBe(0);
  });
  afterAll(() => p?.cleanup());

  const list = (extra: NodeJS.ProcessEnv = {}) =>
    run(['aggregate', 'list', '--json'], { cwd: p.dir, env: { ...env, ...extra } });

  it('is refused before the store changes: the store keeps the old key, no temp file is left', async (t) => {
    const unlock = await lock(conf);
    if (!unlock) return t.skip();
    let r;
    try {
      r = await run(['config', '--master-key', 'new-mk'], { cwd: p.dir, env });
    } finally {
      await unlock();
    }
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[EDBX_ERR_CONFIG_WRITE]');
    expect(r.stderr).toContain(configPath);
    expect(r.stderr).not.toContain('new-mk');
    expect(await temps(conf)).toEqual([]);
    // The file and the store still agree on the old key.
    const after = await list();
    expect(after.code, after.stderr).toBe(0);
    const audit = await run(['audit', 'list', '--json'], { cwd: p.dir, env });
    expect(audit.stdout).not.toContain('master_key');
  });

  it('a write failing after the store took the new key says so and how to go on; that way works', async () => {
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const saved = { mk: process.env.EVENTDBX_MASTER_KEY, dek: process.env.EVENTDBX_DEK };
    delete process.env.EVENTDBX_MASTER_KEY;
    delete process.env.EVENTDBX_DEK;
    fail.write = true;
    let code: number;
    let said = '';
    try {
      code = await configCommand({ masterKey: 'new-mk-2' }, configPath);
    } finally {
      fail.write = false;
      said = stderr.mock.calls.map((c) => String(c[0])).join('');
      stderr.mockRestore();
      Object.assign(process.env, saved.mk ? { EVENTDBX_MASTER_KEY: saved.mk } : {});
      Object.assign(process.env, saved.dek ? { EVENTDBX_DEK: saved.dek } : {});
    }
    expect(code).toBe(1);
    expect(said).toContain('[EDBX_ERR_CONFIG_WRITE]');
    expect(said).toContain('the store already uses the new master key');
    expect(said).toContain('start with EVENTDBX_MASTER_KEY set to the new master key');
    expect(said).toContain(
      '`EVENTDBX_MASTER_KEY=<new master key> eventdbx config --master-key <new master key>`',
    );
    expect(said).not.toContain('new-mk-2');
    expect(said.trim().split('\n')).toHaveLength(1);

    // As it says: the file's old key no longer opens the store, the new one from the environment does...
    expect((await list()).stderr).toContain('EDBX_ERR_WRONG_MASTER_KEY');
    expect((await list({ EVENTDBX_MASTER_KEY: 'new-mk-2' })).code).toBe(0);
    // ...and running the command it gives records the new key in the file.
    const fixed = await run(['config', '--master-key', 'new-mk-2'], {
      cwd: p.dir,
      env: { ...env, EVENTDBX_MASTER_KEY: 'new-mk-2' },
    });
    expect(fixed.code, fixed.stderr).toBe(0);
    const healed = await list();
    expect(healed.code, healed.stderr).toBe(0);
  });
});

describe('config with a config file on a full disk (qa-full #2)', () => {
  it('changes nothing and records nothing: the file is written whole before the server takes the change', async () => {
    const p = await project();
    const server = await startServer(p);
    try {
      const before = await readFile(p.configPath, 'utf8');
      // A file size limit on the CLI alone (its config file cannot grow), as a full disk would; the
      // server, which applies and audits the change, has none.
      for (const args of [
        ['config', '--restrict', 'strict'],
        ['config', '--dek', 'new-dek'],
      ]) {
        const child = spawn('prlimit', ['--fsize=16:unlimited', process.execPath, MAIN, ...args], {
          cwd: p.dir,
          env: p.env,
          stdio: ['pipe', 'pipe', 'pipe'],
        });
        child.stdin.end();
        const r = await outcomeOf(child);
        expect(r.code, r.stderr).toBe(1);
        expect(r.stderr).toMatch(/^error: cannot write the configuration .*\[EDBX_ERR_CONFIG_WRITE\]\n$/);
        expect(r.stderr).not.toContain('already uses');
      }
      expect(await readFile(p.configPath, 'utf8')).toBe(before);
      expect(await temps(path.dirname(p.configPath))).toEqual([]);
      const audit = await p.cli(['audit', 'list', '--json']);
      expect(audit.code, audit.stderr).toBe(0);
      expect(audit.stdout).not.toContain('config-changed');
      // The store kept its DEK: the file's still opens it.
      const a = await p.cli(applyArgs('patient', 'p-1', 'admitted', ['ward=3']));
      expect(a.code, a.stderr).toBe(0);
    } finally {
      await server.stop();
      await p.cleanup();
    }
  }, 60_000);
});
