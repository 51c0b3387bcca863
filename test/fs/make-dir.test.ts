/**
 * makeDir: a directory and its missing parents, where Node's recursive mkdir would spin for ever (a
 * path under /proc: the system answers ENOENT under a parent that exists) — read-model QA #3.
 */
import { existsSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeDir } from '../../src/fs/make-dir.js';
import { project, run } from '../helpers/cli.js';
import { tempDirs } from '../helpers/temp.js';

const temp = tempDirs('edbx-mkdir-');

describe('makeDir', () => {
  it('makes each missing parent with the mode given, and leaves a directory that exists be', async () => {
    const base = await temp();
    const deep = path.join(base, 'a', 'b', 'c');
    makeDir(deep, 0o700);
    for (const d of ['a', 'a/b', 'a/b/c']) expect(statSync(path.join(base, d)).mode & 0o777).toBe(0o700);
    makeDir(deep, 0o755);
    expect(statSync(deep).mode & 0o777).toBe(0o700);
  });

  it('throws ENOTDIR where a file stands in the path, and makes nothing', async () => {
    const base = await temp();
    writeFileSync(path.join(base, 'file'), '');
    expect(() => makeDir(path.join(base, 'file'))).toThrow(expect.objectContaining({ code: 'ENOTDIR' }));
    expect(() => makeDir(path.join(base, 'file', 'x'))).toThrow(expect.objectContaining({ code: 'ENOTDIR' }));
    expect(existsSync(path.join(base, 'file', 'x'))).toBe(false);
  });

  it.runIf(existsSync('/proc/self'))(
    'throws the ENOENT of a parent the system refuses to make (under /proc), instead of spinning',
    () => {
      expect(() => makeDir('/proc/eventdbx-nope/x')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    },
  );

  it.runIf(existsSync('/proc/self'))(
    'a data dir or a backup that cannot be made is a coded one-line error, not a command that never returns',
    async () => {
      const p = await project();
      try {
        const env = { ...p.env, EVENTDBX_DATA_DIR: '/proc/eventdbx-nope/data' };
        const list = await run(['aggregate', 'list'], { cwd: p.dir, env });
        expect(list.code).toBe(1);
        expect(list.stderr).toContain('cannot write in the data dir /proc/eventdbx-nope/data (ENOENT)');
        expect(list.stderr).toContain('[EDBX_ERR_DATA_DIR_NOT_WRITABLE]');
        const backup = await p.cli(['backup', '/proc/eventdbx-nope/backup']);
        expect(backup.code).toBe(1);
        expect(backup.stderr.trim()).toBe(
          'error: cannot back up into /proc/eventdbx-nope/backup: cannot create a directory in /proc/eventdbx-nope (ENOENT); name a place this user can write [EDBX_ERR_BACKUP_TARGET]',
        );
      } finally {
        await p.cleanup();
      }
    },
  );
});
