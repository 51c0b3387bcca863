/**
 * File helpers of the file sinks (CSV, JSON): durable appends (every byte written, or the batch cut
 * off again: a write to a filling disk may take only part of its data without an error), repair of a
 * record torn by a crash in the middle of a write (the file is cut back to its last complete record;
 * that record's event is redelivered, since the cursor never moves before the bytes are synced),
 * finding the last event a file holds (so events redelivered after a crash are not written twice) or a
 * given one (a dead letter an earlier retry may have written), reading the last record (compared with
 * the store's event before anything is delivered: see divergence.ts), moving a file aside
 * (`plugin replay --rebuild`), and noticing that an open file was deleted or replaced under the sink.
 */
import { type Stats, createReadStream } from 'node:fs';
import { type FileHandle, open, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { reasonOf } from './types.js';

const CHUNK = 64 * 1024;

/**
 * Modes of the files and directories the file sinks create (CSV, JSON, SQLite): they hold plaintext
 * copies of payloads that are encrypted at rest in the store, so owner-only. Existing ones keep theirs.
 */
export const PRIVATE_FILE = 0o600;
export const PRIVATE_DIR = 0o700;

/**
 * How a file sink opens the files it writes: `open` of node:fs/promises. A test passes one whose
 * handles run out of space like a filling disk (short writes, then ENOSPC), which no portable test
 * can make a real disk do.
 */
export type OpenFile = (file: string, flags: string, mode?: number) => Promise<FileHandle>;

/**
 * Write all of `data` through `fh` (at its end, or its current offset). A write may store only part
 * of what it was given without an error (a disk filling up: the next write then fails with ENOSPC),
 * so one `write` call is not enough: loop until every byte is written or a write fails.
 */
export async function writeAll(fh: FileHandle, data: string | Buffer): Promise<void> {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  for (let at = 0; at < bytes.length;) {
    const { bytesWritten } = await fh.write(bytes, at, bytes.length - at);
    // Never seen on a regular file, but looping on it would never end.
    if (bytesWritten <= 0) throw new Error(`a write stored 0 of ${bytes.length - at} bytes`);
    at += bytesWritten;
  }
}

/**
 * Cut a file back to `size`, its length before a batch that failed, and make that durable: no torn
 * record stays, and the retry appends cleanly. False when that failed too: the batch's bytes may then
 * be in the file (whole records, and a torn one the next open cuts off).
 */
export async function cutBack(fh: FileHandle, size: number): Promise<boolean> {
  try {
    await fh.truncate(size);
    await fh.sync();
    return true;
  } catch {
    return false;
  }
}

/**
 * The reason a file sink's delivery failed, as its last error, dead letters and log say it. A full
 * disk (or quota) is named as such with what to do: the bare `ENOSPC: no space left on device, write`
 * does not say which file, nor that delivery resumes once there is room.
 */
export function fileFailureReason(plugin: string, target: string, e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code !== 'ENOSPC' && code !== 'EDQUOT') return reasonOf(e);
  const what = code === 'ENOSPC' ? 'no space left on the disk' : 'the disk quota is used up';
  return `cannot write ${target}: ${what} (${code}); free space there (delivery is retried; \`eventdbx plugin retry ${plugin}\` redelivers dead letters)`;
}

/**
 * The end of a file read backwards, a chunk at a time: after each read, the bytes from `pos` to the
 * end (`tail`) and how many that read added (`n`).
 */
async function* tails(
  fh: FileHandle,
  size: number,
): AsyncGenerator<{ pos: number; tail: Buffer; n: number }> {
  let pos = size;
  let tail = Buffer.alloc(0);
  while (pos > 0) {
    const n = Math.min(CHUNK, pos);
    pos -= n;
    const chunk = Buffer.alloc(n);
    await fh.read(chunk, 0, n, pos);
    tail = Buffer.concat([chunk, tail]);
    yield { pos, tail, n };
  }
}

/** Cut `file` after the last occurrence of `terminator` (or to empty); a missing file is fine. */
export async function repairTail(file: string, terminator: string): Promise<void> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r+');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  try {
    const size = (await fh.stat()).size;
    const term = Buffer.from(terminator, 'utf8');
    for await (const { pos, tail, n } of tails(fh, size)) {
      if (tail.length === n && tail.length >= term.length && tail.subarray(-term.length).equals(term)) return;
      const at = tail.lastIndexOf(term);
      if (at >= 0) {
        await fh.truncate(pos + at + term.length);
        await fh.sync();
        return;
      }
    }
    if (size > 0) {
      await fh.truncate(0);
      await fh.sync();
    }
  } finally {
    await fh.close();
  }
}

/** Make a rename or a new file in `dir` durable. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Whether two stats are of one file (same device and inode). */
export const sameFile = (a: Pick<Stats, 'dev' | 'ino'>, b: Pick<Stats, 'dev' | 'ino'> | undefined): boolean =>
  b !== undefined && a.dev === b.dev && a.ino === b.ino;

/** What a path that is neither a regular file nor a directory is, to name it (undefined for those). */
export function specialKind(st: Stats): string | undefined {
  if (st.isFile() || st.isDirectory()) return undefined;
  if (st.isFIFO()) return 'a named pipe';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/**
 * Refuse a file sink's target that exists as a named pipe, a socket or a device: opening or reading
 * one (a pipe no one writes to) blocks a thread of the pool until the process ends, and nothing in it
 * can be read back to skip redelivered events. Delivery fails with this reason and is retried, so
 * removing it (or pointing the plugin elsewhere) is enough.
 */
export function refuseSpecialFile(file: string, st: Stats | undefined): void {
  const kind = st && specialKind(st);
  if (kind === undefined) return;
  const what = kind.startsWith('not ') ? kind : `${kind}, not a regular file`;
  throw new Error(`${file} is ${what}: remove it, or point the plugin at a regular file`);
}

/** The stats of `file`, or undefined when it does not exist. */
export async function statOrNone(file: string): Promise<Stats | undefined> {
  try {
    return await stat(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR')
      return undefined;
    throw e;
  }
}

/**
 * Whether `file` still names the file open as `fh`. A file deleted (or replaced) while open keeps
 * taking writes through the handle, into a file nobody can read: sinks reopen instead.
 */
export async function stillAt(fh: FileHandle, file: string): Promise<boolean> {
  const [open, named] = await Promise.all([fh.stat(), statOrNone(file)]);
  return sameFile(open, named);
}

/**
 * Call `visit` with the `position` of each EventRecord JSON document in `file` from byte `from` (a
 * record boundary) on, until it returns true. Payload values are strings and keys are escaped, so
 * `"position": <digits>` only ever is a record's own position, in JSON Lines as in `--pretty` documents.
 */
async function scanPositions(
  file: string,
  from: number,
  visit: (position: number) => boolean,
): Promise<void> {
  const input = createReadStream(file, { start: from, encoding: 'utf8' });
  try {
    for await (const line of createInterface({ input, crlfDelay: Infinity })) {
      for (const m of line.matchAll(/"position":\s*(\d+)/g)) if (visit(Number(m[1]))) return;
    }
  } finally {
    // Stopped early (a position found), the stream would stay open.
    input.destroy();
  }
}

/** The highest `position` of the records in `file` from byte `from` on, 0 if none. */
export async function maxPosition(file: string, from = 0): Promise<number> {
  let max = 0;
  await scanPositions(file, from, (p) => {
    max = Math.max(max, p);
    return false;
  });
  return max;
}

/** Whether `file` holds the record at `position` (it may read the whole file: only when in doubt). */
export async function holdsPosition(file: string, position: number): Promise<boolean> {
  let found = false;
  await scanPositions(file, 0, (p) => (found = p === position));
  return found;
}

/**
 * The text of the last record of `file`, whose records each end with `terminator` (as repairTail
 * leaves it), or undefined when it has none. Read backwards: only the last record's bytes.
 */
export async function lastRecord(file: string, terminator: string): Promise<string | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const term = Buffer.from(terminator, 'utf8');
    let whole: Buffer | undefined;
    for await (const { tail } of tails(fh, (await fh.stat()).size)) {
      // The terminator before the last record's own: where that record starts.
      const at = tail.length > term.length ? tail.lastIndexOf(term, tail.length - term.length - 1) : -1;
      if (at >= 0) return tail.subarray(at + term.length).toString('utf8');
      whole = tail;
    }
    return whole && whole.length > 0 ? whole.toString('utf8') : undefined;
  } finally {
    await fh.close();
  }
}

/**
 * Move `file` aside to `<file>.<suffix>` (durably), for `plugin replay --rebuild`: what a sink wrote is
 * kept, never deleted. Says what was done; nothing when there is no such file.
 */
export async function moveAside(file: string, suffix: string): Promise<string[]> {
  if (!(await statOrNone(file))) return [];
  const to = `${file}.${suffix}`;
  await rename(file, to);
  await syncDir(path.dirname(file));
  return [`moved ${file} to ${to}`];
}
