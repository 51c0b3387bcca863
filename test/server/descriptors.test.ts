/**
 * The parts of the qa-full round's finding 4 that need no child process: reading the open-files
 * limit, and EMFILE/ENFILE as their own code.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { noteOpenFilesLimit, toEventDbxError } from '../../src/core/errors.js';
import { parseOpenFilesLimit, readOpenFilesLimit } from '../../src/fs/open-files-limit.js';
import { ioError, openError } from '../../src/storage/rocksdb/rocksdb-engine.js';

afterEach(() => noteOpenFilesLimit(undefined));

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
`;

describe('the open-files limit', () => {
  it('is the soft value of /proc/self/limits, undefined when unlimited or unreadable', () => {
    expect(parseOpenFilesLimit(LIMITS)).toBe(1024);
    expect(parseOpenFilesLimit(LIMITS.replace('1024  ', 'unlimited'))).toBeUndefined();
    expect(parseOpenFilesLimit('Max processes 100 100 processes')).toBeUndefined();
    expect(
      readOpenFilesLimit(() => {
        throw Object.assign(new Error('EMFILE'), { code: 'EMFILE' });
      }),
    ).toBeUndefined();
    if (process.platform === 'linux') expect(readOpenFilesLimit()).toBeGreaterThan(0);
  });
});

describe('EMFILE and ENFILE (qa-full #4)', () => {
  it('are EDBX_ERR_TOO_MANY_OPEN_FILES with the limit and what to raise it to', () => {
    const emfile = Object.assign(new Error("EMFILE: too many open files, open '/x/kh.js'"), {
      code: 'EMFILE',
    });
    expect(toEventDbxError(emfile).message).toBe(
      "too many open files (EMFILE: too many open files, open '/x/kh.js'); raise the limit to at least 256: `ulimit -n 256` in the shell that starts eventdbx, or `LimitNOFILE=256` in its systemd unit, then run the command again",
    );
    noteOpenFilesLimit(1024);
    const e = toEventDbxError(emfile);
    expect(e.code).toBe('EDBX_ERR_TOO_MANY_OPEN_FILES');
    expect(e.message).toContain(
      'this process may have 1024 files open (its open-files limit); raise the limit to at least 2048',
    );
    const enfile = toEventDbxError(
      Object.assign(new Error('ENFILE: file table overflow'), { code: 'ENFILE' }),
    );
    expect(enfile.code).toBe('EDBX_ERR_TOO_MANY_OPEN_FILES');
    expect(enfile.message).toContain('raise `fs.file-max`');
  });

  it('are the same code when RocksDB cannot open the store for want of descriptors', () => {
    noteOpenFilesLimit(64);
    const e = openError(
      new Error('IO error: While open a file for random read: /d/000012.sst: Too many open files'),
      '/d',
    );
    expect(e.code).toBe('EDBX_ERR_TOO_MANY_OPEN_FILES');
    expect(e.message).toContain('this process may have 64 files open');
    expect(
      openError(
        new Error('IO error: While open a file for appending: /d/000013.log: Too many open files in system'),
        '/d',
      ).message,
    ).toContain('fs.file-max');
  });

  it('are said in the storage error of a write that needed a new file (the store then refuses writes)', () => {
    noteOpenFilesLimit(1024);
    const e = ioError(
      new Error('IO error: While open a file for appending: /d/000018.log: Too many open files'),
      '/d',
    );
    expect(e.code).toBe('EDBX_ERR_STORE_IO');
    expect(e.message).toBe(
      'storage error: IO error: While open a file for appending: /d/000018.log: Too many open files (the process used up its open-files limit, 1024: raise it, see README "Troubleshooting")',
    );
    expect(ioError(new Error('IO error: No space left on device'), '/d').message).toBe(
      'storage error: IO error: No space left on device',
    );
  });
});
