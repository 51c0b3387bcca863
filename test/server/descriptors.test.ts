/**
 * The parts of the qa-full round's findings 1 and 4 that need no child process: reading the
 * open-files limit, the descriptors kept from connections and the cap they leave, the cap following
 * a growing store, accept errors logged (not a crash), and EMFILE/ENFILE as their own code.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { noteOpenFilesLimit, toEventDbxError } from '../../src/core/errors.js';
import { parseOpenFilesLimit, readOpenFilesLimit } from '../../src/fs/open-files-limit.js';
import {
  type DescriptorUse,
  connectionBudget,
  loweredLine,
  reservedDescriptors,
  tooFewDescriptors,
  watchDescriptors,
} from '../../src/server/descriptors.js';
import { ioError, openError } from '../../src/storage/rocksdb/rocksdb-engine.js';
import { rawRequest, testServer } from '../helpers/http.js';

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

describe('descriptors kept from connections', () => {
  it('are the process, commands, plugins and twice the store tables, counted in steps', () => {
    expect(reservedDescriptors({ tables: 0, plugins: 0 })).toBe(144);
    expect(reservedDescriptors({ tables: 1, plugins: 0 })).toBe(144 + 32);
    expect(reservedDescriptors({ tables: 16, plugins: 0 })).toBe(144 + 32);
    expect(reservedDescriptors({ tables: 17, plugins: 2 })).toBe(144 + 64 + 16);
  });

  it('leave a cap of max_connections or what the limit leaves, whichever is smaller', () => {
    const use = { tables: 0, plugins: 0 };
    expect(connectionBudget(1024, 256, use).effective).toBe(112);
    expect(connectionBudget(64, 256, use).effective).toBe(64);
    expect(connectionBudget(1024, undefined, use).effective).toBe(1024);
    expect(connectionBudget(1024, 100, use).effective).toBe(1);
    expect(loweredLine(connectionBudget(64, 256, use))).toBeUndefined();
    expect(loweredLine(connectionBudget(1024, 256, use))?.msg).toBe(
      'max_connections lowered from 1024 to 112: the open-files limit (`ulimit -n`) is 256, and the server keeps 144 descriptors for its store (0 table files), its plugins (0) and CLI commands; to allow all 1024, raise the limit to at least 1168 (`ulimit -n 1168` in the shell that starts eventdbx, or `LimitNOFILE=1168` in its systemd unit)',
    );
  });

  it('refuse a start that leaves fewer than 16 connections, or than a lower max_connections', () => {
    const use = { tables: 0, plugins: 0 };
    expect(tooFewDescriptors(connectionBudget(1024, 160, use))).toBeUndefined();
    const refused = tooFewDescriptors(connectionBudget(1024, 159, use));
    expect(refused?.code).toBe('EDBX_ERR_TOO_MANY_OPEN_FILES');
    expect(refused?.message).toContain(
      'which leaves 15 for connections, fewer than 16; raise it to at least 160',
    );
    // Four connections asked for and four left: enough.
    expect(tooFewDescriptors(connectionBudget(4, 148, use))).toBeUndefined();
    expect(tooFewDescriptors(connectionBudget(4, 147, use))?.message).toContain('fewer than 4');
    expect(tooFewDescriptors(connectionBudget(1024, undefined, use))).toBeUndefined();
  });

  it('are counted again while the server runs: the cap follows the store as it grows and shrinks', async () => {
    const server = { maxConnections: 112 } as net.Server;
    const lines: Array<{ level: string; fields: object; msg: string }> = [];
    const log = {
      warn: (fields: object, msg: string) => void lines.push({ level: 'warn', fields, msg }),
      info: (fields: object, msg: string) => void lines.push({ level: 'info', fields, msg }),
    };
    let use: DescriptorUse = { tables: 0, plugins: 0 };
    const stop = watchDescriptors({
      server,
      log,
      budget: connectionBudget(1024, 256, use),
      use: async () => use,
      intervalMs: 5,
    });
    try {
      use = { tables: 20, plugins: 1 };
      const until = async (n: number) => {
        const deadline = Date.now() + 5_000;
        while (lines.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      };
      await until(1);
      expect(server.maxConnections).toBe(256 - 144 - 64 - 8);
      expect(lines[0]).toMatchObject({
        level: 'warn',
        fields: { effective_max_connections: 40, table_files: 20, plugins: 1 },
      });
      expect(lines[0]!.msg).toMatch(
        /^max_connections now 40 \(was 112; configured 1024\): the open-files limit/,
      );
      use = { tables: 0, plugins: 0 };
      await until(2);
      expect(server.maxConnections).toBe(112);
      expect(lines[1]).toMatchObject({
        level: 'info',
        msg: 'max_connections now 112 (was 40; configured 1024)',
      });
      await new Promise((r) => setTimeout(r, 30));
      expect(lines).toHaveLength(2);
    } finally {
      stop();
    }
  });
});

describe('accept errors (EMFILE on accept)', () => {
  it('are logged at warn level, collapsed, and the server goes on serving', async () => {
    noteOpenFilesLimit(256);
    const s = await testServer({ logs: true });
    try {
      const emfile = () =>
        Object.assign(new Error('accept EMFILE'), { code: 'EMFILE', errno: -24, syscall: 'accept' });
      // Without a listener, this 'error' event would have ended the process.
      s.app.server.emit('error', emfile());
      s.app.server.emit('error', emfile());
      expect((await rawRequest(s.port, 'GET /health HTTP/1.1\r\nHost: x')).status).toBe(200);
      const lines = s.logs.filter((l) => l.channel === 'http');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({
        level: 40,
        code: 'EDBX_ERR_TOO_MANY_OPEN_FILES',
        errno: 'EMFILE',
        open_files_limit: 256,
      });
      expect(lines[0]!.msg).toBe(
        'cannot accept a connection (EMFILE): the process has used up its open-files limit (256); new connections are closed at once until descriptors are free: raise the limit (`ulimit -n`, `LimitNOFILE=`) or lower max_connections',
      );
      // Any other error is not swallowed.
      expect(() => s.app.server.emit('error', new Error('something else'))).toThrow('something else');
    } finally {
      await s.close();
    }
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
