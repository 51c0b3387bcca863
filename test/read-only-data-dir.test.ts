/**
 * A data dir on a read-only filesystem (QA qa-ops item 7): `@nxtedition/rocksdb` has no read-only open
 * (binding.cc only calls `DB::Open`), so every command, reads included, needs to create RocksDB's LOCK
 * file. Read commands failed with the raw `IO error: while open a file for lock: …/LOCK: Read-only file
 * system [EDBX_ERR_STORE_IO]`; they now say EDBX_ERR_DATA_DIR_NOT_WRITABLE and what to do.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openError } from '../src/storage/rocksdb/rocksdb-engine.js';
import { applyArgs, project, run } from './helpers/cli.js';

/** What abstract-level throws for a failed open: its own error, the binding's as the cause. */
const openFailure = (native: string) =>
  Object.assign(new Error('Database failed to open', { cause: new Error(native) }), {
    code: 'LEVEL_DATABASE_NOT_OPEN',
  });

describe('a data dir that cannot be written (qa-ops #7)', () => {
  it('maps RocksDB open failures for EROFS and EACCES to EDBX_ERR_DATA_DIR_NOT_WRITABLE', () => {
    const erofs = openError(
      openFailure('IO error: while open a file for lock: /srv/d/LOCK: Read-only file system'),
      '/srv/d',
    );
    expect([erofs.code, erofs.message]).toEqual([
      'EDBX_ERR_DATA_DIR_NOT_WRITABLE',
      'cannot write in the data dir /srv/d (EROFS: a read-only filesystem): every command opens the store for writing, reads included; remount it read-write, or copy it (`cp -a`) to a writable directory and use the copy (--data-dir or EVENTDBX_DATA_DIR)',
    ]);
    const eacces = openError(
      openFailure('IO error: while open a file for lock: /srv/d/LOCK: Permission denied'),
      '/srv/d',
    );
    expect([eacces.code, eacces.message]).toEqual([
      'EDBX_ERR_DATA_DIR_NOT_WRITABLE',
      'cannot write in the data dir /srv/d (EACCES): make it writable by this user (and the disk not full), or choose another with --data-dir',
    ]);
    const other = openError(openFailure('IO error: /srv/d/CURRENT: Input/output error'), '/srv/d');
    expect(other.code).toBe('EDBX_ERR_STORE_IO');
  });

  it('read commands on a read-only bind mount say so (skipped where mount(2) is not allowed)', async (ctx) => {
    const p = await project();
    const ro = await mkdtemp(path.join(os.tmpdir(), 'edbx-ro-'));
    let mounted = false;
    try {
      expect((await p.cli(applyArgs('patient', 'p-1', 'admitted', ['ward=3']))).code).toBe(0);
      try {
        execFileSync('mount', ['--bind', p.dir, ro], { stdio: 'ignore' });
        mounted = true;
        execFileSync('mount', ['-o', 'remount,bind,ro', ro], { stdio: 'ignore' });
      } catch {
        ctx.skip();
      }
      const dataDir = path.join(ro, '.eventdbx');
      const env = { ...p.env, EVENTDBX_DATA_DIR: dataDir };
      const r = await run(['aggregate', 'list'], { cwd: p.dir, env });
      expect(r.code).toBe(1);
      // Before: `storage error: cannot open …: IO error: while open a file for lock: …/LOCK: Read-only
      // file system [EDBX_ERR_STORE_IO]`.
      expect(r.stderr).toBe(
        `error: cannot write in the data dir ${dataDir} (EROFS: a read-only filesystem): every command opens the store for writing, reads included; remount it read-write, or copy it (\`cp -a\`) to a writable directory and use the copy (--data-dir or EVENTDBX_DATA_DIR) [EDBX_ERR_DATA_DIR_NOT_WRITABLE]\n`,
      );
    } finally {
      if (mounted) execFileSync('umount', [ro], { stdio: 'ignore' });
      await rm(ro, { recursive: true, force: true });
      await p.cleanup();
    }
  });
});
