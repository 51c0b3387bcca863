/**
 * A backup onto a target that fills up (DR QA finding 4). It said `storage error: IO error: Seen error.
 * Skip writing buffer. [EDBX_ERR_STORE_IO]`: the close of the half-written copy, which RocksDB fails
 * with that line once a write failed, replaced the write's own error, and the code is the one that
 * means the store itself failed. Now the first error is kept, and the message names the target, the
 * cause and what to do, with a code of its own; nothing is left at the target and the store is fine.
 *
 * How the disk fills up: `ulimit -f` on the CLI process (RocksDB's writes past the limit then fail with
 * EFBIG, a real failure of a real RocksDB at the target, without root); and, where this process may
 * mount one (root, as the QA did), a small tmpfs filled up, for ENOSPC itself.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDataDir } from '../src/store/secure.js';
import { type CliResult, MAIN, type Project, outcomeOf, project } from './helpers/cli.js';

let p: Project;

beforeAll(async () => {
  p = await project();
  const open = () =>
    openDataDir({
      dataDir: p.dataDir,
      masterKey: 'test-master',
      dek: 'test-dek',
      memoryThreshold: 100,
      maxPayloadBytes: 256 * 1024,
      verifyThreads: 0,
    });
  const secure = await open();
  for (let k = 0; k < 10; k++)
    await secure.store.appendMany(
      Array.from({ length: 200 }, (_, i) => ({
        aggregate_type: 'acct',
        aggregate_id: `a-${k}-${i}`,
        event_type: 'posted',
        payload: { n: String(i).repeat(200) },
      })),
      { issuedBy: { group: 'admin', user: 'jane' } },
    );
  await secure.store.close();
  // Opened again: its write-ahead log is flushed into a table now, not by the limited CLI below.
  await (await open()).store.close();
}, 120_000);

afterAll(async () => {
  await p.cleanup();
});

/** `sh -c` with `setup` before the CLI (SIGXFSZ ignored: a write past `ulimit -f` fails with EFBIG). */
function shCli(setup: string, args: readonly string[]): Promise<CliResult> {
  const quoted = [process.execPath, MAIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return outcomeOf(spawn('sh', ['-c', `${setup}; trap '' XFSZ; exec ${quoted}`], { cwd: p.dir, env: p.env }));
}

const refusal = (target: string, cause: string, fix: string) =>
  `error: cannot write the backup to ${target}: ${cause}; ${fix}; the store is not affected, and nothing was left at ${target} [EDBX_ERR_BACKUP_WRITE]\n`;

describe('a backup whose target cannot take it (DR #4)', () => {
  it('names the target, the cause and what to do, leaves nothing there, and the store is fine', async () => {
    const parent = path.join(p.dir, 'backups');
    const target = path.join(parent, 'b1');
    // 2 MiB per file (512-byte blocks): the store's own files are written below it, the copy's are not.
    const r = await shCli('ulimit -f 4096', ['backup', target]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      refusal(target, 'a file over its size limit (EFBIG)', 'raise the limit or choose another target'),
    );
    expect(await readdir(parent)).toEqual([]);
    const verify = await p.cli(['aggregate', 'verify']);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    // The same backup where it fits.
    const fits = await p.cli(['backup', path.join(parent, 'b2')]);
    expect(fits.code, fits.stderr).toBe(0);
  }, 60_000);

  const mnt = path.join(os.tmpdir(), `edbx-full-${process.pid}`);
  let mounted = false;
  beforeAll(async () => {
    if (process.getuid?.() !== 0) return;
    await mkdir(mnt, { recursive: true });
    mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]).status === 0;
  });
  afterAll(async () => {
    if (mounted) spawnSync('umount', [mnt]);
    await rm(mnt, { recursive: true, force: true });
  });

  it('on a full disk says "no space left on device (ENOSPC)" (a 1 MiB tmpfs, where it can be mounted)', async (ctx) => {
    if (!mounted) return ctx.skip();
    const target = path.join(mnt, 'b1');
    const r = await p.cli(['backup', target]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      refusal(target, 'no space left on device (ENOSPC)', 'free space there or choose another target'),
    );
    expect(await readdir(mnt)).toEqual([]);
  }, 60_000);
});
