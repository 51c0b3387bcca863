/**
 * The lifecycle commands never use, nor remove, what is not an EventDBX data dir (qa-spec #1, #2, #3):
 * an empty `--data-dir` or `EVENTDBX_DATA_DIR` is refused (it meant the current directory), and a
 * named configuration that is missing is refused by `status`, `stop` and `destroy` as by every command.
 */
import { existsSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
