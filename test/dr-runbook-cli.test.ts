/**
 * The backup and restore runbook with the built CLI (QA disaster-recovery findings 5, 6 and 9): a
 * config re-created with a wrong key is refused, and a wrong key in a config file is corrected by
 * `config`; the checking commands take `--data-dir` and say which store they checked; `start` never
 * runs on a backup's own directory; and a server whose data dir was moved from under it is found by
 * `status`, `stop` and `start` instead of "not running" (the one test that runs a server).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeConfigFile } from '../src/config/config.js';
import { snapshot } from './helpers/snapshot.js';
import { type Project, api, applyArgs, freePort, project, run, running, startServer } from './helpers/cli.js';

describe('the runbook on a store, no server running', () => {
  let p: Project;
  let backup: string;
  beforeAll(async () => {
    p = await project();
    for (let i = 1; i <= 3; i++)
      expect((await p.cli(applyArgs('acct', 'a-1', 'posted', [`n=${i}`]))).code).toBe(0);
    const note = await p.cli(['checkpoint', '--json']);
    await writeFile(path.join(p.dir, 'saved.checkpoint'), JSON.parse(note.stdout).checkpoint.note as string);
    const b = await p.cli(['backup', 'backups/b1']);
    expect(b.code, b.stderr).toBe(0);
    // What a restore needs, said when the backup is taken (QA dr #5).
    expect(b.stdout).toMatch(
      /keys master key [0-9a-f]{16}, DEK [0-9a-f]{16} \(key id 1\): a restore needs these keys/,
    );
    backup = path.join(p.dir, 'backups', 'b1');
  });
  afterAll(() => p.cleanup());

  it('refuses a new config whose keys do not open the data dir it names, saving nothing (QA dr #5)', async () => {
    const env = { ...p.env, EVENTDBX_CONFIG: path.join(p.dir, 'new-host.json') };
    const cli = (args: string[]) => run(args, { cwd: p.dir, env });
    const wrong = await cli([
      'config',
      '--master-key',
      'other-mk',
      '--dek',
      'test-dek',
      '--data-dir',
      p.dataDir,
    ]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(`the master key given does not open the store already in ${p.dataDir}`);
    expect(wrong.stderr).toMatch(/nothing was saved \[EDBX_ERR_WRONG_MASTER_KEY\]/);
    const dek = await cli([
      'config',
      '--master-key',
      'test-master',
      '--dek',
      'other-dek',
      '--data-dir',
      p.dataDir,
    ]);
    expect(dek.stderr).toMatch(
      /is not a key of this store \(the store already in .*nothing was saved \[EDBX_ERR_DEK_MISMATCH\]/,
    );
    expect(existsSync(path.join(p.dir, 'new-host.json'))).toBe(false);
    const right = await cli([
      'config',
      '--master-key',
      'test-master',
      '--dek',
      'test-dek',
      '--data-dir',
      p.dataDir,
    ]);
    expect(right.code, right.stderr).toBe(0);
  });

  it('takes a master key that opens the store as the correction of a wrong one in the file (QA dr #5)', async () => {
    const file = path.join(p.dir, 'typo.json');
    await writeConfigFile(file, { master_key: 'typo-mk', dek: 'test-dek', data_dir: p.dataDir });
    const env = { ...p.env, EVENTDBX_CONFIG: file };
    const cli = (args: string[]) => run(args, { cwd: p.dir, env });
    expect((await cli(['aggregate', 'list'])).stderr).toContain('[EDBX_ERR_WRONG_MASTER_KEY]');
    // Neither a rotation from the wrong key (refused) nor a rotation at all: the file is put right.
    const fixed = await cli(['config', '--master-key', 'test-master', '--json']);
    expect(fixed.code, fixed.stderr).toBe(0);
    expect(JSON.parse(fixed.stdout)).toMatchObject({ saved: true, corrected: ['master_key'] });
    expect((await cli(['aggregate', 'list'])).code).toBe(0);
    const audit = JSON.parse((await cli(['audit', 'list', '--json'])).stdout).entries as Array<{
      event_type: string;
    }>;
    expect(audit.map((e) => e.event_type)).not.toContain('config-changed');
    // A key that opens nothing is no correction.
    await writeConfigFile(file, { master_key: 'typo-mk', dek: 'test-dek', data_dir: p.dataDir });
    expect((await cli(['config', '--master-key', 'another-typo'])).stderr).toContain(
      '[EDBX_ERR_WRONG_MASTER_KEY]',
    );
  });

  it('checks another data dir with --data-dir, and says which it checked (QA dr #6)', async () => {
    const copy = path.join(p.dir, 'restored');
    expect(spawnSync('cp', ['-a', backup, copy]).status).toBe(0); // the runbook's copy
    const verify = await p.cli(['aggregate', 'verify', '--data-dir', copy]);
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout.trimEnd().split('\n').at(-1)).toBe(
      `data dir ${copy} (opened by this command: no server runs for it)`,
    );
    const json = JSON.parse((await p.cli(['aggregate', 'verify', '--data-dir', copy, '--json'])).stdout);
    expect(json).toMatchObject({ all: { ok: true }, data_dir: copy, checked_by_server: false });
    const own = await p.cli(['audit', 'verify']);
    expect(own.stdout).toContain(`data dir ${p.dataDir} (opened by this command`);
    const checkpoint = await p.cli([
      'checkpoint',
      'verify',
      '--from',
      'saved.checkpoint',
      '--data-dir',
      copy,
    ]);
    expect(checkpoint.code, checkpoint.stderr).toBe(0);
    expect(checkpoint.stdout).toContain(`data dir ${copy} (`);
    const listed = await p.cli(['audit', 'list', '--data-dir', copy, '--json']);
    expect(listed.code, listed.stderr).toBe(0);
  });

  it("refuses to start on a backup's own directory, leaving it as it was (QA dr #6)", async () => {
    const before = await snapshot(backup);
    const port = String(await freePort());
    const r = await p.cli(['start', '--foreground', '--data-dir', backup, '--port', port]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${backup} is the backup taken at`);
    expect(r.stderr).toContain('[EDBX_ERR_BACKUP_IN_PLACE]');
    expect(await snapshot(backup)).toEqual(before);
  });
});

describe('a server whose data dir was moved from under it (QA dr #9)', () => {
  let p: Project;
  let pid: number | undefined;
  beforeAll(async () => {
    p = await project();
  });
  afterAll(async () => {
    if (pid !== undefined && running(pid)) process.kill(pid, 'SIGKILL');
    await p.cleanup();
  });

  it('is found by status, start and stop, which say where its files are now', async () => {
    // It stops by itself once it notices (below): here it checks too rarely to within this test.
    p.env.EVENTDBX_DATA_DIR_CHECK_MS = '60000';
    const server = await startServer(p);
    pid = server.process.pid!;
    const moved = path.join(p.dir, '.eventdbx.broken');
    await rename(p.dataDir, moved); // the runbook's `mv`, its `stop` skipped
    const status = await p.cli(['status']);
    expect(status.code).toBe(1);
    expect(status.stdout).not.toContain('not running');
    expect(status.stderr).toContain(`the server started on it (pid ${pid}, port ${server.port}) still runs`);
    expect(status.stderr).toContain(`now at ${moved} (the data dir was moved)`);
    expect(status.stderr).toContain(`\`eventdbx stop --data-dir ${moved}\``);
    expect(status.stderr).toContain('[EDBX_ERR_DATA_DIR_MOVED]');
    const json = JSON.parse((await p.cli(['status', '--json'])).stdout);
    expect(json).toEqual({
      running: false,
      data_dir: p.dataDir,
      moved_server: { pid, data_dir: moved, port: server.port },
    });
    const start = await p.cli(['start', '--port', String(await freePort())]);
    expect(start.code).toBe(1);
    expect(start.stderr).toContain('[EDBX_ERR_DATA_DIR_MOVED]');
    expect((await p.cli(['stop'])).stderr).toContain('[EDBX_ERR_DATA_DIR_MOVED]');
    expect(running(pid)).toBe(true);
    const stopped = await p.cli(['stop', '--data-dir', moved]);
    expect(stopped.stdout).toBe(`stopped server ${pid}\n`);
    const after = await p.cli(['status']);
    expect(after.stdout).toContain('not running');
    expect(after.stderr).toBe('');
  });
});

describe('a server notices its data dir was moved and stops without writing by its old path', () => {
  const projects: Project[] = [];
  afterAll(async () => {
    for (const p of projects) await p.cleanup();
  });

  /** A server with 3 acknowledged events whose data dir is then moved, a stand-in put in its place. */
  async function movedUnder(checkMs: string) {
    const p = await project();
    projects.push(p);
    p.env.EVENTDBX_DATA_DIR_CHECK_MS = checkMs;
    const server = await startServer(p);
    for (let i = 1; i <= 3; i++) {
      const r = await api(`${server.url}/v1/aggregates/acct/a-1/events`, server.adminToken, {
        body: { event_type: 'posted', payload: { n: String(i) } },
      });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
    }
    const moved = path.join(p.dir, '.eventdbx.broken');
    await rename(p.dataDir, moved);
    // What a restore puts there (its files only need to be left alone).
    await mkdir(p.dataDir, { mode: 0o700 });
    await writeFile(path.join(p.dataDir, 'CURRENT'), 'MANIFEST-000009\n');
    await writeFile(path.join(p.dataDir, 'MANIFEST-000009'), 'restored');
    await writeFile(path.join(p.dataDir, '000008.sst'), 'restored');
    const placed = await snapshot(p.dataDir);
    const exited = new Promise<number | null>((r) => server.process.on('exit', (code) => r(code)));
    return { p, server, moved, placed, exited };
  }

  /** The moved files hold every acknowledged event and verify. */
  async function intact(p: Project, moved: string) {
    const there = (args: string[]) => run(args, { cwd: p.dir, env: { ...p.env, EVENTDBX_DATA_DIR: moved } });
    const verify = await there(['aggregate', 'verify', '--json']);
    expect(verify.code, verify.stderr).toBe(0);
    const events = await there([
      'aggregate',
      'replay',
      '--aggregate',
      'acct',
      '--aggregate-id',
      'a-1',
      '--json',
    ]);
    expect(events.code, events.stderr).toBe(0);
    expect(JSON.parse(events.stdout).events.map((e: { version: number }) => e.version)).toEqual([1, 2, 3]);
  }

  it('within a second or so of the move, on its own', async () => {
    const { p, server, moved, placed, exited } = await movedUnder('200');
    expect(await exited).toBe(1);
    expect(server.output()).toContain(
      `the data dir ${p.dataDir} is no longer the directory this server opened: its files were moved to ${moved}, and another directory is at its path now: stopping at once, writing nothing there`,
    );
    expect(server.output()).toContain('EDBX_ERR_DATA_DIR_MOVED');
    expect(await snapshot(p.dataDir)).toEqual(placed);
    await intact(p, moved);
  });

  it('when asked to stop before it noticed (a graceful stop would close the store by that path)', async () => {
    const { p, server, moved, placed, exited } = await movedUnder('60000');
    server.process.kill('SIGTERM');
    expect(await exited).toBe(1);
    expect(server.output()).toContain(`its files were moved to ${moved}`);
    expect(await snapshot(p.dataDir)).toEqual(placed);
    await intact(p, moved);
  });
});
