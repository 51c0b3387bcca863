/**
 * Links planted in the data dir are never followed (QA qa-pen #3): whoever can write the data dir
 * (a service account) pointed `eventdbx.pid` or `eventdbx.log` at any file, and a `start`, a stop or a
 * logrotate SIGHUP run as root truncated, rewrote or appended to it (a dangling link made root create
 * it). The targets here are files in the test's temp dir: following a link needs no root to show.
 * A data dir owned by another account is refused to root, and warned about to another user.
 */
import { spawnSync } from 'node:child_process';
import {
  chmod,
  chown,
  lstat,
  mkdir,
  readFile,
  readdir,
  readlink,
  rename,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { type Project, applyArgs, freePort, project, running, serverPid } from './helpers/cli.js';

const VICTIM = 'root-owned content: must not change\n';

const waitFor = async (what: string, done: () => Promise<boolean>, ms = 10_000) => {
  for (const until = Date.now() + ms; !(await done()); await new Promise((r) => setTimeout(r, 25)))
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
};
const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

let p: Project;
afterEach(async () => {
  await p.cli(['stop']);
  await p.cleanup();
});

/** A project on a free port with its data dir made (0700), and a victim file beside it. */
async function setUp(): Promise<{ victim: string }> {
  p = await project();
  expect((await p.cli(['config', '--port', String(await freePort())])).code).toBe(0);
  await mkdir(p.dataDir, { mode: 0o700 });
  const victim = path.join(p.dir, 'victim');
  await writeFile(victim, VICTIM, { mode: 0o644 });
  return { victim };
}

/** The refusal line for a link at `file`. */
const refusal = (file: string) =>
  `error: refused ${file}: it is a symbolic link, where EventDBX keeps a file of its own; it never follows a link, nor writes into anything but a plain file with one name (whoever put it there could make this process write to any file): remove it (\`rm ${file}\`), find out who put it there, and run the command again [EDBX_ERR_FILE_REFUSED]\n`;

describe('links in the data dir are never followed (qa-pen #3)', () => {
  it('start refuses a PID file that is a link, to a file or dangling, and touches neither target', async () => {
    const { victim } = await setUp();
    const pidFile = path.join(p.dataDir, 'eventdbx.pid');
    await symlink(victim, pidFile);
    const r = await p.cli(['start']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(refusal(pidFile));
    expect(await readFile(victim, 'utf8')).toBe(VICTIM);
    expect(await readlink(pidFile)).toBe(victim); // left for the operator to look at

    // A dangling link: root was made to create its target.
    const created = path.join(p.dir, 'created-by-start');
    // Moved out of the data dir: a file of no store's there makes a new store refuse it (qa-spec #1).
    await rename(pidFile, path.join(p.dir, 'eventdbx.pid.seen'));
    await symlink(created, pidFile);
    expect((await p.cli(['start'])).stderr).toBe(refusal(pidFile));
    expect(await exists(created)).toBe(false);
  }, 60_000);

  it('start refuses a log that is a link and appends nothing to its target', async () => {
    const { victim } = await setUp();
    const log = path.join(p.dataDir, 'eventdbx.log');
    await symlink(victim, log);
    const r = await p.cli(['start']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(refusal(log));
    expect(await readFile(victim, 'utf8')).toBe(VICTIM);
    expect(await exists(path.join(p.dataDir, 'eventdbx.pid'))).toBe(false);
  }, 60_000);

  it('a link put in place of the PID file while the server runs is replaced at the stop, not written through', async () => {
    const { victim } = await setUp();
    expect((await p.cli(['start'])).code).toBe(0);
    const pid = (await serverPid(p.dataDir))!;
    const pidFile = path.join(p.dataDir, 'eventdbx.pid');
    await rename(pidFile, `${pidFile}.moved`);
    await symlink(victim, pidFile);
    // `stop` refuses to read it (it would say which process to signal): the signal itself, as a
    // supervisor sends it. The stopping server marks its PID file `stopping_since`, then removes it.
    expect((await p.cli(['stop'])).stderr).toBe(refusal(pidFile));
    process.kill(pid, 'SIGTERM');
    await waitFor('the server to stop', async () => !running(pid));
    expect(await readFile(victim, 'utf8')).toBe(VICTIM);
    expect(await exists(pidFile)).toBe(false);
  }, 60_000);

  it('SIGHUP with a link in place of the rotated log keeps logging to the old file and says why', async () => {
    const { victim } = await setUp();
    expect((await p.cli(['start'])).code).toBe(0);
    const pid = (await serverPid(p.dataDir))!;
    const log = path.join(p.dataDir, 'eventdbx.log');
    await rename(log, `${log}.1`);
    await symlink(victim, log);
    process.kill(pid, 'SIGHUP');
    const lines = async () =>
      (await readFile(`${log}.1`, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { level: number; msg: string });
    await waitFor('the refused reopen', async () => (await lines()).some((l) => l.level === 40));
    expect((await lines()).at(-1)).toMatchObject({
      level: 40,
      msg: `SIGHUP: cannot reopen the log ${log} (${refusal(log).slice('error: '.length, -' [EDBX_ERR_FILE_REFUSED]\n'.length)}): still writing to the file opened before`,
    });
    expect(running(pid)).toBe(true);
    expect((await p.cli(applyArgs('patient', 'p-1', 'admitted', ['ward=3']))).code).toBe(0);
    expect(await readFile(victim, 'utf8')).toBe(VICTIM);
    expect((await lstat(log)).isSymbolicLink()).toBe(true);
  }, 60_000);

  it('start refuses a link at backup.json before the server listens', async () => {
    const { victim } = await setUp();
    const marker = path.join(p.dataDir, 'backup.json');
    await symlink(victim, marker);
    const r = await p.cli(['start']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(refusal(marker));
    // Not a server left running after a start that said it failed.
    expect((await p.cli(['status'])).code).toBe(1);
    expect(await serverPid(p.dataDir)).toBeUndefined();
    expect(await readFile(victim, 'utf8')).toBe(VICTIM);
  }, 60_000);

  it('a command refuses a dangling link at acknowledged-head and does not create its target', async () => {
    await setUp();
    const file = path.join(p.dataDir, 'acknowledged-head');
    const created = path.join(p.dir, 'created-by-apply');
    await symlink(created, file);
    const r = await p.cli(applyArgs('patient', 'p-1', 'admitted', ['ward=3']));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(refusal(file));
    expect(await exists(created)).toBe(false);
  }, 60_000);
});

describe('a data dir owned by another account (qa-pen #3)', () => {
  const root = process.getuid?.() === 0;
  // As root (CI): the data dir is given to `nobody`, as a service account's would be.
  it.skipIf(!root)(
    'is refused to root before anything in it is read or written',
    async () => {
      await setUp();
      const nobody = 65534;
      await chown(p.dataDir, nobody, nobody);
      for (const args of [
        ['start'],
        ['status'],
        ['stop'],
        applyArgs('patient', 'p-1', 'admitted', ['ward=3']),
      ]) {
        const r = await p.cli(args);
        expect(r.code, args.join(' ')).toBe(1);
        expect(r.stderr).toMatch(
          new RegExp(
            `^error: the data dir ${p.dataDir} belongs to .*uid ${nobody}.*, and root does not use a directory another account can change .*: run the command as .* \\(\`sudo -u .* eventdbx …\`\\), or make root its owner \\(\`chown -R root: ${p.dataDir}\`\\) \\[EDBX_ERR_DATA_DIR_OWNER\\]\\n$`,
          ),
        );
      }
      expect(await readdir(p.dataDir)).toEqual([]);
    },
    60_000,
  );

  it.skipIf(!root)('is warned about to another user than root; one owned by root is not', async () => {
    await setUp();
    const other = 4242; // an account with no name: its uid is shown
    await chown(p.dataDir, other, other);
    await chmod(p.dir, 0o755); // so that `nobody` can look at the data dir
    const module = pathToFileURL(path.resolve('dist/cli/runtime.js')).href;
    const check = (dir: string) =>
      // Loaded as root (the checkout may be root's alone), then run as `nobody`.
      spawnSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `const m = await import(${JSON.stringify(module)}); process.setgid(65534); process.setuid(65534);` +
            `m.checkDataDirOwner(${JSON.stringify(dir)}); m.checkDataDirOwner(${JSON.stringify(dir)});`,
        ],
        { encoding: 'utf8' },
      );
    const r = check(p.dataDir);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(
      new RegExp(
        `^warning: data dir ${p.dataDir} belongs to uid ${other}, not to this user \\(.*uid 65534\\): that account can plant links and files there that this command acts on with your rights; run it as uid ${other} \\(\`sudo -u '#${other}' eventdbx …\`\\)\\n$`,
      ),
    );
    await chown(p.dataDir, 0, 0);
    expect(check(p.dataDir).stderr).toBe('');
  });
});
