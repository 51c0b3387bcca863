/**
 * DataDirWatch: whether the directory at a server's data-dir path is still the one it opened. (A
 * running server's reaction, ending without writing by that path, is in test/dr-runbook-cli.test.ts;
 * how often it checks, `EVENTDBX_DATA_DIR_CHECK_MS`, in test/interval-env.test.ts.)
 */
import { mkdir, rename, rm, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { DataDirWatch } from '../../src/server/data-dir-watch.js';
import { tempDirs } from '../helpers/temp.js';

const tempDir = tempDirs('edbx-watch-');
let root: string;
beforeEach(async () => {
  root = await tempDir();
});

describe('DataDirWatch', () => {
  it('says nothing while the directory stays, and names the change once it is moved, for good', async () => {
    const dir = path.join(root, 'data');
    await mkdir(dir);
    const watch = await DataDirWatch.of(dir);
    expect(await watch.check()).toBeUndefined();
    await rename(dir, path.join(root, 'moved'));
    const why = await watch.check();
    expect(why).toContain(`the data dir ${dir} is no longer the directory this server opened`);
    expect(why).toContain('nothing is at its path now');
    await rename(path.join(root, 'moved'), dir); // put back: still told, the files may have been written
    expect(await watch.check()).toBe(why);
  });

  it('tells a directory put in its place, and a link pointed elsewhere', async () => {
    const dir = path.join(root, 'data');
    await mkdir(dir);
    const watch = await DataDirWatch.of(dir);
    await rename(dir, path.join(root, 'moved'));
    await mkdir(dir);
    expect(await watch.check()).toContain('another directory is at its path now');

    const a = path.join(root, 'a');
    const b = path.join(root, 'b');
    await mkdir(a);
    await mkdir(b);
    const link = path.join(root, 'link');
    await symlink(a, link);
    const viaLink = await DataDirWatch.of(link);
    expect(await viaLink.check()).toBeUndefined();
    await unlink(link);
    await symlink(b, link);
    expect(await viaLink.check()).toContain(`the data dir ${link} is no longer the directory`);
  });

  it('calls back once when watching, and not after stop()', async () => {
    const dir = path.join(root, 'data');
    await mkdir(dir);
    const watch = await DataDirWatch.of(dir);
    const told: string[] = [];
    watch.watch((why) => told.push(why), 100);
    await new Promise((r) => setTimeout(r, 250));
    expect(told).toEqual([]);
    await rm(dir, { recursive: true });
    await expect.poll(() => told.length, { timeout: 5_000 }).toBe(1);
    await new Promise((r) => setTimeout(r, 300));
    expect(told).toHaveLength(1);

    const other = await DataDirWatch.of(root);
    const none: string[] = [];
    other.watch((why) => none.push(why), 100);
    other.stop();
    await rename(root, `${root}-x`);
    await new Promise((r) => setTimeout(r, 300));
    await rename(`${root}-x`, root);
    expect(none).toEqual([]);
  });
});
