/**
 * File helpers of the file sinks (CSV, JSON): durable appends, and repair of a record torn by a crash
 * in the middle of a write (the file is cut back to its last complete record; that record's event is
 * redelivered, since the cursor never moves before the bytes are synced).
 */
import { type FileHandle, open } from 'node:fs/promises';

const CHUNK = 64 * 1024;

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
    let pos = size;
    let tail = Buffer.alloc(0);
    while (pos > 0) {
      const n = Math.min(CHUNK, pos);
      pos -= n;
      const chunk = Buffer.alloc(n);
      await fh.read(chunk, 0, n, pos);
      tail = Buffer.concat([chunk, tail]);
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
