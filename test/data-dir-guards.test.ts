/**
 * The lifecycle commands never use, nor remove, what is not an EventDBX data dir (qa-spec #1, #2, #3):
 * an empty `--data-dir` or `EVENTDBX_DATA_DIR` is refused (it meant the current directory), and a
 * named configuration that is missing is refused by `status`, `stop` and `destroy` as by every command.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { checkDestroyable, readDataDir } from '../src/cli/data-dir.js';
import { loadConfig, writeConfigFile } from '../src/config/config.js';
import { openDataDir } from '../src/store/secure.js';
import { type Project, project, run } from './helpers/cli.js';

/** A real store (RocksDB files, keyring copy) in `dataDir`, closed again. */
async function makeStore(dataDir: string): Promise<void> {
  const secure = await openDataDir({
    dataDir,
    masterKey: 'test-master',
    dek: 'test-dek',
    memoryThreshold: 10,
    maxPayloadBytes: 262_144,
  });
  await secure.store.close();
}

let p: Project;
beforeAll(async () => {
  p = await project();
  await writeFile(path.join(p.dir, 'important.txt'), 'keep\n');
});
afterAll(() => p.cleanup());

describe('an empty data dir is refused, never taken for the current directory (qa-spec #1, #3)', () => {
  it('`--data-dir ""` is one coded line from every command that takes it, and nothing is touched', async () => {
    const before = (await readdir(p.dir)).sort();
    const commands = [
      ['start'],
      ['stop'],
      ['status'],
      ['restart'],
      ['destroy', '--yes'],
      ['backup', path.join(p.dir, 'bk')],
      ['config'],
    ];
    const results = await Promise.all(commands.map((c) => p.cli([...c, '--data-dir', ''])));
    for (const [i, r] of results.entries()) {
      expect([commands[i]![0], r.code, r.stdout, r.stderr]).toEqual([
        commands[i]![0],
        1,
        '',
        'error: invalid --data-dir "": use a non-empty path [EDBX_ERR_INVALID_ARGUMENT]\n',
      ]);
    }
    expect((await readdir(p.dir)).sort()).toEqual(before);
  });

  it('an empty EVENTDBX_DATA_DIR is refused, not taken for unset (the configured data dir)', async () => {
    await expect(loadConfig(p.configPath, { EVENTDBX_DATA_DIR: '' })).rejects.toMatchObject({
      code: 'EDBX_ERR_CONFIG_INVALID',
      message:
        'configuration environment EVENTDBX_DATA_DIR is invalid: it is set but empty; give it a path, or unset it to use the configured data dir',
    });
  });

  it('a configuration value no check caught is one coded line, and the file is not written', async () => {
    const file = path.join(p.dir, 'never.json');
    await expect(writeConfigFile(file, { data_dir: '' })).rejects.toMatchObject({
      code: 'EDBX_ERR_CONFIG_INVALID',
      message: expect.stringMatching(
        /^configuration .*never\.json is invalid: not written: data_dir: [^\n]+$/,
      ),
    });
    expect(existsSync(file)).toBe(false);
  });
});

describe('a named configuration that is missing is refused by status, stop and destroy (qa-spec #2)', () => {
  it('EDBX_ERR_CONFIG_MISSING, and the data dir beside the typo stays', async () => {
    await makeStore(p.dataDir); // <dir of the typo>/.eventdbx: what a typo used to stop and destroy
    const typo = path.join(p.dir, '.eventdbx.jsn');
    const keys = { EVENTDBX_MASTER_KEY: 'test-master', EVENTDBX_DEK: 'test-dek' };
    const results = await Promise.all([
      p.cli(['status', '--config', typo]),
      p.cli(['stop', '--config', typo]),
      p.cli(['destroy', '--config', typo, '--yes']),
      run(['destroy', '--yes'], { cwd: p.dir, env: { ...p.env, EVENTDBX_CONFIG: typo } }),
      // Keys in the environment do for the commands that need them, not for `destroy`.
      run(['destroy', '--yes', '--config', typo], { cwd: p.dir, env: { ...p.env, ...keys } }),
    ]);
    for (const r of results)
      expect([r.code, r.stdout, r.stderr]).toEqual([
        1,
        '',
        `error: no configuration at ${typo}: create one with \`eventdbx config --master-key <secret> --dek <secret>\` [EDBX_ERR_CONFIG_MISSING]\n`,
      ]);
    expect(existsSync(path.join(p.dataDir, 'keyring.json'))).toBe(true);
  });
});

describe('destroy removes an EventDBX data dir and nothing else (qa-spec #1)', () => {
  const where = 'check --data-dir (or data_dir in the configuration, or EVENTDBX_DATA_DIR)';

  it('refuses, removing nothing, a directory of other files, a store mixed with them, and the current directory', async () => {
    const victim = path.join(p.dir, 'victim');
    await mkdir(victim);
    await writeFile(path.join(victim, 'important.txt'), 'keep\n');
    const mixed = path.join(p.dir, 'mixed');
    await makeStore(mixed);
    await writeFile(path.join(mixed, 'notes.txt'), 'keep\n');
    await mkdir(path.join(mixed, '.eventdbx'));
    const store = path.join(p.dir, 'store');
    await makeStore(store);
    const destroy = (dir: string, cwd = p.dir) =>
      run(['destroy', '--data-dir', dir, '--yes'], { cwd, env: p.env });
    const results = await Promise.all([destroy(victim), destroy(mixed), destroy('.', store)]);
    expect(results.map((r) => [r.code, r.stdout, r.stderr])).toEqual(
      [
        `${victim} is not an EventDBX data dir (no store, log or PID file of EventDBX in it; it holds "important.txt"): destroy removed nothing; ${where} [EDBX_ERR_NOT_A_DATA_DIR]`,
        `${mixed} holds what is not the store's (".eventdbx/", "notes.txt"): destroy removed nothing; move that out of it and destroy again, or remove the directory yourself [EDBX_ERR_NOT_A_DATA_DIR]`,
        `refusing to destroy ${store}: it is the current directory; run destroy from outside it (\`cd /\` first) [EDBX_ERR_DESTROY_REFUSED]`,
      ].map((line) => [1, '', `error: ${line}\n`]),
    );
    expect(await readFile(path.join(victim, 'important.txt'), 'utf8')).toBe('keep\n');
    expect(await readFile(path.join(mixed, 'notes.txt'), 'utf8')).toBe('keep\n');
    for (const dir of [mixed, store]) expect(existsSync(path.join(dir, 'keyring.json'))).toBe(true);
  });

  it('never takes the root, the home directory, a parent of the current directory or a file for a data dir', async () => {
    const store = path.join(p.dir, 'home');
    await makeStore(store);
    const refused = (dir: string) => {
      try {
        checkDestroyable(dir, readDataDir(dir)!);
      } catch (e) {
        return e as Error;
      }
      return undefined;
    };
    const own = `a data dir is a directory of its own: ${where}`;
    expect(refused('/')?.message).toBe(`refusing to destroy /: it is the root directory; ${own}`);
    const parent = path.dirname(process.cwd());
    expect(refused(parent)?.message).toBe(
      `refusing to destroy ${parent}: it is a parent of the current directory (${process.cwd()}); run destroy from outside it (\`cd /\` first)`,
    );
    vi.stubEnv('HOME', store);
    try {
      expect(refused(store)?.message).toBe(`refusing to destroy ${store}: it is your home directory; ${own}`);
    } finally {
      vi.unstubAllEnvs();
    }
    expect(refused(store)).toBeUndefined(); // the same store, as a data dir of its own
    const file = path.join(p.dir, 'important.txt');
    expect(() => readDataDir(file)).toThrow(
      `${file} is not a directory, so not an EventDBX data dir: nothing was removed; ${where}`,
    );
  });

  it("removes the store's own files, its rotated logs and a link among them (not its target), then the directory", async () => {
    const store = path.join(p.dir, 'rotated');
    await makeStore(store);
    await writeFile(path.join(store, 'eventdbx.log.1'), 'an old log\n');
    await symlink(path.join(p.dir, 'important.txt'), path.join(store, 'eventdbx.log.2.gz'));
    const empty = path.join(p.dir, 'empty');
    await mkdir(empty);
    const [r, e] = await Promise.all([
      p.cli(['destroy', '--data-dir', store, '--yes', '--json']),
      p.cli(['destroy', '--data-dir', empty, '--yes']),
    ]);
    expect([r.code, r.stderr, JSON.parse(r.stdout)]).toEqual([
      0,
      '',
      { destroyed: true, stopped_pid: null, data_dir: store, config: null },
    ]);
    expect([e.code, e.stderr, e.stdout]).toEqual([0, '', `removed ${empty}\n`]);
    expect([existsSync(store), existsSync(empty)]).toEqual([false, false]);
    expect(await readFile(path.join(p.dir, 'important.txt'), 'utf8')).toBe('keep\n');
  });
});

describe('a new store is made only in a new or empty directory (qa-spec #1)', () => {
  it('start, and a command opening the store, refuse a directory of other files and write nothing there', async () => {
    const proj = path.join(p.dir, 'proj');
    await mkdir(proj);
    await writeFile(path.join(proj, 'a.txt'), 'keep\n');
    const fresh = path.join(p.dir, 'fresh');
    await mkdir(fresh);
    const implicit = { ...p.env };
    delete implicit.EVENTDBX_CONFIG; // a first start writes ./.eventdbx.json: not for this data dir
    // The data dir is checked first; the bad port keeps a start that would not check it from serving.
    const results = await Promise.all([
      p.cli(['start', '--data-dir', proj, '--port', '99999']),
      run(['aggregate', 'list'], { cwd: p.dir, env: { ...p.env, EVENTDBX_DATA_DIR: proj } }),
      run(['start', '--data-dir', proj, '--port', '99999'], { cwd: fresh, env: implicit }),
    ]);
    const refusal = `error: ${proj} is not empty and holds no EventDBX store (it holds "a.txt"): a new store is made only in a new or empty directory, never among other files; choose another (--data-dir, data_dir in the configuration, or EVENTDBX_DATA_DIR), or empty it [EDBX_ERR_NOT_A_DATA_DIR]\n`;
    expect(results.map((r) => [r.code, r.stdout, r.stderr])).toEqual(results.map(() => [1, '', refusal]));
    expect([await readdir(proj), await readdir(fresh)]).toEqual([['a.txt'], []]);
  });
});
