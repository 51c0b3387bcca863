/**
 * The data dir's files are owner-only, and a data dir other users can open is warned about (QA qa-aud
 * item 5): RocksDB created its WAL, SST and MANIFEST files 0644, so in a data dir made 0755 by hand
 * another local user read the wrapped keyring (to guess the master key offline) and the ids, and
 * could copy the store; `start` said nothing. Real RocksDB files, and the real CLI and daemon.
 */
import { spawnSync } from 'node:child_process';
import { chmod, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { RocksDbEngine } from '../src/storage/index.js';
import type { WriteOp } from '../src/storage/engine.js';
import { type Project, applyArgs, freePort, project } from './helpers/cli.js';
import { tempDirs } from './helpers/temp.js';

const mode = async (p: string) => (await stat(p)).mode & 0o777;
/** The process umask (read by setting it, then putting it back). */
const umask = (): number => {
  const u = process.umask(0o022);
  process.umask(u);
  return u;
};

/** Every file in `dir` with its mode. */
async function modes(dir: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const f of await readdir(dir)) out[f] = await mode(path.join(dir, f));
  return out;
}

const puts = (from: number, n: number): WriteOp[] =>
  Array.from({ length: n }, (_, i) => ({
    type: 'put',
    space: 'main',
    key: Buffer.from(`k${String(from + i).padStart(8, '0')}`),
    value: Buffer.alloc(512, i),
  }));

const tempRoot = tempDirs('edbx-modes-');
async function looseDir(): Promise<string> {
  const root = await tempRoot();
  const dir = path.join(root, 'data');
  await mkdir(dir);
  await chmod(dir, 0o755); // made by hand, as a user would
  return dir;
}

describe('RocksDB files (qa-aud #5)', () => {
  it('are owner-only in a directory others can open: WAL, MANIFEST, SST after a flush, and the rest', async () => {
    const dir = await looseDir();
    for (let round = 0; round < 2; round++) {
      // The second open recovers the first one's WAL into an SST file, and starts a new MANIFEST.
      const engine = new RocksDbEngine(dir);
      await engine.open();
      await engine.write(puts(round * 2000, 2000), { sync: true });
      await engine.close();
    }
    const files = await modes(dir);
    const names = Object.keys(files);
    for (const kind of [/\.sst$/, /\.log$/, /^MANIFEST-/, /^CURRENT$/, /^OPTIONS-/])
      expect(
        names.some((n) => kind.test(n)),
        `a file matching ${kind} in ${names.join(', ')}`,
      ).toBe(true);
    for (const [name, m] of Object.entries(files)) expect(m.toString(8), name).toBe('600');
    // The directory is the user's: told about (by the CLI), never changed.
    expect(await mode(dir)).toBe(0o755);
  });

  it('are created under an owner-only umask while a database is open, put back when the last closes', async () => {
    const before = umask();
    const a = new RocksDbEngine(await looseDir());
    const b = new RocksDbEngine(await looseDir());
    try {
      await a.open();
      expect(umask()).toBe(0o077);
      await b.open();
      await a.close();
      expect(umask()).toBe(0o077); // b is still open
      await b.close();
      expect(umask()).toBe(before);
      // A stricter umask keeps its own bits meanwhile.
      process.umask(0o177);
      await a.open();
      expect(umask()).toBe(0o177);
      await a.close();
      expect(umask()).toBe(0o177);
    } finally {
      await a.close();
      await b.close();
      process.umask(before);
    }
  });

  it('a database that fails to open leaves the umask as it was', async () => {
    const before = umask();
    const dir = await looseDir();
    const holder = new RocksDbEngine(dir);
    await holder.open();
    try {
      await expect(new RocksDbEngine(dir).open()).rejects.toMatchObject({ code: 'EDBX_ERR_STORE_LOCKED' });
      await holder.close();
      expect(umask()).toBe(before);
    } finally {
      await holder.close();
    }
  });
});

describe('a data dir other users can open (qa-aud #5)', () => {
  let p: Project;
  afterEach(async () => {
    await p.cli(['stop']);
    await p.cleanup();
  });

  const warning = (dir: string) =>
    `warning: data dir ${dir} is open to other users (mode 0755): run \`chmod 700 ${dir}\`\n`;

  it('start and CLI commands opening the store warn, keep its mode, and create owner-only files', async () => {
    p = await project();
    expect((await p.cli(['config', '--port', String(await freePort())])).code).toBe(0);
    await mkdir(p.dataDir);
    await chmod(p.dataDir, 0o755);

    const started = await p.cli(['start']);
    expect(started.code, started.stderr).toBe(0);
    expect(started.stderr).toBe(warning(p.dataDir));
    // Appends through the running server (which opened the store) and a flush at the stop.
    for (let i = 0; i < 5; i++)
      expect((await p.cli(applyArgs('patient', `p-${i}`, 'patient-added', ['n=1']))).code).toBe(0);
    expect((await p.cli(['stop'])).code).toBe(0);
    // The daemon's log stays JSON lines: the warning was the `start`'s to give.
    const log = await readFile(path.join(p.dataDir, 'eventdbx.log'), 'utf8');
    expect(log).not.toContain('warning:');

    // No server: the command opens the store itself, and says so too.
    const local = await p.cli(applyArgs('patient', 'p-x', 'patient-added', ['n=2']));
    expect(local.code, local.stderr).toBe(0);
    expect(local.stderr).toBe(warning(p.dataDir));

    expect(await mode(p.dataDir)).toBe(0o755);
    const files = await modes(p.dataDir);
    expect(Object.keys(files)).toEqual(expect.arrayContaining(['keyring.json', 'eventdbx.log', 'CURRENT']));
    for (const [name, m] of Object.entries(files)) expect(m.toString(8), name).toBe('600');

    await chmod(p.dataDir, 0o700);
    const quiet = await p.cli(['aggregate', 'list']);
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).toBe('');
  });

  it('quotes a data dir with a space in the command it shows', async () => {
    p = await project();
    const dataDir = path.join(p.dir, 'my data');
    expect((await p.cli(['config', '--data-dir', dataDir])).code).toBe(0);
    await mkdir(dataDir);
    await chmod(dataDir, 0o755);
    const r = await p.cli(['aggregate', 'list']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe(
      `warning: data dir ${dataDir} is open to other users (mode 0755): run \`chmod 700 '${dataDir}'\`\n`,
    );
  });

  it('a data dir that start creates is 0700, and nothing is said', async () => {
    p = await project();
    expect((await p.cli(['config', '--port', String(await freePort())])).code).toBe(0);
    const started = await p.cli(['start']);
    expect(started.code, started.stderr).toBe(0);
    expect(started.stderr).toBe('');
    expect(await mode(p.dataDir)).toBe(0o700);
  });
});

describe('a user other than the data dir owner (qa-aud #5)', () => {
  const root = process.getuid?.() === 0;
  it.skipIf(!root)('is told it cannot read the data dir, never that no server runs', async () => {
    const dir = await tempRoot();
    const dataDir = path.join(dir, 'data');
    await mkdir(dataDir, { mode: 0o700 });
    await writeFile(path.join(dataDir, 'eventdbx.pid'), JSON.stringify({ pid: process.pid }), {
      mode: 0o600,
    });
    await chmod(dir, 0o755);
    const module = pathToFileURL(path.resolve('dist/cli/server-commands.js')).href;
    // The CLI's code is loaded as root (the checkout may be one only root reads), then the process
    // becomes `nobody`, to whom the data dir (root's, 0700) is closed.
    const r = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const m = await import(${JSON.stringify(module)}); process.setgid(65534); process.setuid(65534);` +
          `await m.runningServer(${JSON.stringify(dataDir)}).then(` +
          `(s) => console.log('running', JSON.stringify(s)), (e) => console.log(e.code, e.message));`,
      ],
      { encoding: 'utf8' },
    );
    expect(r.stdout.trim()).toBe(
      `EDBX_ERR_DATA_DIR_NOT_READABLE cannot read the data dir ${dataDir} (EACCES): run this command as the user that owns it (the server's user), or choose another with --data-dir`,
    );
  });
});
