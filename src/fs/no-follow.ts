/**
 * The files EventDBX keeps in a directory by name (in the data dir: the PID file, the log, the
 * keyring copy, `acknowledged-head`, the markers; beside them, the config file) are opened so that a
 * link, or anything but a plain file with one name, in their place is refused, never followed
 * (QA qa-pen #3). Whoever can write the directory (its owner, a service account) could otherwise
 * point `eventdbx.pid` at any file and have a process running as root truncate it, or make the log
 * append to it. So: `O_NOFOLLOW` on every open (a symbolic link fails), `O_NONBLOCK` (a FIFO fails or
 * is seen, never waited on), then the open file itself is checked (a directory, device, FIFO or socket,
 * or a file with other hard links, is refused); a file replaced whole is written to a new temporary
 * file (`O_CREAT|O_EXCL|O_NOFOLLOW`) and renamed over the name, which replaces a link itself, never
 * its target. A refusal is EDBX_ERR_FILE_REFUSED, naming the file: remove it.
 *
 * RocksDB's own files are RocksDB's to open: root refuses a data dir owned by another account
 * (checkDataDirOwner, cli/runtime.ts), which covers them.
 */
import {
  type Stats,
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  lstatSync,
  openSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { type FileHandle, lstat, open, rename, rm } from 'node:fs/promises';
import { err } from '../core/errors.js';

// Not defined on Windows (no symbolic links to plant there as here): 0 leaves them out.
const NOFOLLOW = constants.O_NOFOLLOW ?? 0;
const NONBLOCK = constants.O_NONBLOCK ?? 0;

/** How a file is opened: read, append (created if missing), update in place, or created anew. */
export type OpenMode = 'read' | 'append' | 'update' | 'create';

const FLAGS: Readonly<Record<OpenMode, number>> = {
  read: constants.O_RDONLY | NOFOLLOW | NONBLOCK,
  append: constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | NOFOLLOW | NONBLOCK,
  update: constants.O_RDWR | NOFOLLOW | NONBLOCK,
  create: constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | NOFOLLOW,
};

/** Files are created owner-only. */
const FILE_MODE = 0o600;

const refused = (file: string, what: string, cause?: unknown) =>
  err('EDBX_ERR_FILE_REFUSED', { path: file, what }, cause);

function kindOf(s: Stats): string {
  if (s.isSymbolicLink()) return 'a symbolic link';
  if (s.isDirectory()) return 'a directory';
  if (s.isFIFO()) return 'a FIFO';
  if (s.isSocket()) return 'a socket';
  if (s.isCharacterDevice() || s.isBlockDevice()) return 'a device';
  return 'not a plain file';
}

/** What is wrong with an opened file, or undefined for a plain file with one name (a read: any plain file). */
function problem(s: Stats, mode: OpenMode): string | undefined {
  if (!s.isFile()) return kindOf(s);
  // A hard link to a file elsewhere is as good as a symbolic one for writing there.
  if (mode !== 'read' && s.nlink > 1) return `a file with ${s.nlink} hard links`;
  return undefined;
}

/**
 * An open that failed: a refusal when the name holds a link or something that is not a plain file,
 * else the error as it was (ENOENT, EACCES, …: callers tell those apart).
 */
function whyNot(file: string, e: unknown, lstatOf: () => Stats | undefined): unknown {
  const code = (e as NodeJS.ErrnoException).code;
  // ELOOP (Linux, macOS) or EMLINK (FreeBSD): O_NOFOLLOW met a link. EISDIR, ENXIO (a FIFO without a
  // reader, a socket), EEXIST (something at a name being created): say what is there.
  if (!['ELOOP', 'EMLINK', 'EISDIR', 'ENXIO', 'EEXIST', 'EOPNOTSUPP'].includes(code ?? '')) return e;
  const s = lstatOf();
  if (s === undefined) return e;
  if (code === 'EEXIST')
    return refused(file, s.isFile() ? 'a file this process did not create' : kindOf(s), e);
  return s.isFile() ? e : refused(file, kindOf(s), e);
}

const lstatSyncOrNone = (file: string): Stats | undefined => {
  try {
    return lstatSync(file);
  } catch {
    return undefined;
  }
};

/** Open `file` (see OpenMode) without following a link; its descriptor. Throws EDBX_ERR_FILE_REFUSED. */
export function openNoFollowSync(file: string, mode: OpenMode): number {
  let fd: number;
  try {
    fd = openSync(file, FLAGS[mode], FILE_MODE);
  } catch (e) {
    throw whyNot(file, e, () => lstatSyncOrNone(file));
  }
  const wrong = problem(fstatSync(fd), mode);
  if (wrong === undefined) return fd;
  closeSync(fd);
  throw refused(file, wrong);
}

/** Open `file` (see OpenMode) without following a link. Throws EDBX_ERR_FILE_REFUSED. */
export async function openNoFollow(file: string, mode: OpenMode): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await open(file, FLAGS[mode], FILE_MODE);
  } catch (e) {
    const s = await lstat(file).catch(() => undefined);
    throw whyNot(file, e, () => s);
  }
  const wrong = problem(await handle.stat(), mode);
  if (wrong === undefined) return handle;
  await handle.close();
  throw refused(file, wrong);
}

/** The whole of a plain file, read without following a link (ENOENT and the like as they are). */
export async function readNoFollow(file: string): Promise<string> {
  const handle = await openNoFollow(file, 'read');
  try {
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/** The temporary file `replaceFile` writes `file` through, beside it. */
const tempOf = (file: string): string => `${file}.${process.pid}.tmp`;

/** Where `rename` failed because of what is at `file` (a directory): a refusal. */
function renameRefusal(file: string, e: unknown): unknown {
  const code = (e as NodeJS.ErrnoException).code;
  if (code !== 'EISDIR' && code !== 'ENOTEMPTY' && code !== 'EEXIST') return e;
  return refused(file, 'a directory', e);
}

/**
 * Put `data` in place of `file` (owner-only): written to a new temporary file beside it, then renamed
 * over it, so that a link at `file` is replaced, never written through, and a reader sees the old
 * content or the new, whole. `sync`: fsync the file before the rename.
 */
export async function replaceFile(file: string, data: string, o: { sync?: boolean } = {}): Promise<void> {
  const tmp = tempOf(file);
  // One left by a process of the same PID, or planted: removed (rm removes a link, not its target).
  await rm(tmp, { force: true });
  const handle = await openNoFollow(tmp, 'create');
  try {
    try {
      await handle.writeFile(data);
      if (o.sync) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file).catch((e: unknown) => {
      throw renameRefusal(file, e);
    });
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw e;
  }
}

/** `replaceFile`, synchronously (for a commit's after-commit step). */
export function replaceFileSync(file: string, data: string, o: { sync?: boolean } = {}): void {
  const tmp = tempOf(file);
  rmSync(tmp, { force: true });
  const fd = openNoFollowSync(tmp, 'create');
  try {
    try {
      const bytes = Buffer.from(data);
      for (let at = 0; at < bytes.length;) at += writeSync(fd, bytes, at);
      if (o.sync) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      renameSync(tmp, file);
    } catch (e) {
      throw renameRefusal(file, e);
    }
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * Whether `file` is there, as a plain file (a link is not followed to find out; false when it cannot
 * be looked at, as `existsSync` says); EDBX_ERR_FILE_REFUSED when something else is in its place. For
 * a file whose presence alone means something.
 */
export function plainFileExists(file: string): boolean {
  const s = lstatSyncOrNone(file);
  if (s === undefined) return false;
  if (!s.isFile()) throw refused(file, kindOf(s));
  return true;
}

/** Write a new file (owner-only) where nothing is yet: refused when anything, a link included, is there. */
export async function writeNewFile(file: string, data: string | Buffer): Promise<void> {
  const handle = await openNoFollow(file, 'create');
  try {
    await handle.writeFile(data);
  } finally {
    await handle.close();
  }
}
