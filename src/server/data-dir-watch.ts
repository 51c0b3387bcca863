/**
 * Whether the data dir a server runs on is still at the path it was started with.
 *
 * RocksDB writes through files it holds open (the write-ahead log) but creates every new file — tables
 * after a flush, a new MANIFEST, `CURRENT` — by the path it was opened with, and deletes obsolete
 * files by that path too. A server left running after `mv .eventdbx .eventdbx.broken` (a runbook's
 * `stop` skipped) goes on acknowledging writes into the moved files, while its flushes, compactions
 * and its closing land in whatever is at the old path now: a restored backup put there lost its files
 * (QA disaster-recovery finding 9). So the server compares the directory at its path with the one it
 * opened (device and inode) every second, and before it closes the store; once they differ it stops
 * at once without closing anything by path (see serve.ts): every write it acknowledged is in the
 * moved files' write-ahead log, as after `kill -9`.
 */
import { realpath, stat } from 'node:fs/promises';
import { DELETED, lockFiles } from './proc.js';
import path from 'node:path';

interface Identity {
  readonly dev: number;
  readonly ino: number;
}

/**
 * Where this process's open `LOCK` file (RocksDB's, the only one it holds) is now: its directory,
 * `deleted`, or undefined where /proc cannot tell (another OS).
 */
function lockNow(): string | undefined {
  const [lock] = lockFiles('self');
  if (lock === undefined) return undefined;
  return lock.endsWith(DELETED) ? 'deleted' : path.dirname(lock);
}

export class DataDirWatch {
  #timer: NodeJS.Timeout | undefined;
  #moved: string | undefined;

  private constructor(
    private readonly dir: string,
    private readonly real: string,
    private readonly opened: Identity,
  ) {}

  /** Remember the directory now at `dir` (call right after opening the store on it). */
  static async of(dir: string): Promise<DataDirWatch> {
    const s = await stat(dir);
    return new DataDirWatch(path.resolve(dir), await realpath(dir), { dev: s.dev, ino: s.ino });
  }

  /**
   * Why the data dir is not where the server opened it — one line, saying where its files are now —
   * or undefined while it is. Once moved, always moved.
   */
  async check(): Promise<string | undefined> {
    if (this.#moved !== undefined) return this.#moved;
    let now: Identity | undefined;
    try {
      const s = await stat(this.dir);
      now = { dev: s.dev, ino: s.ino };
    } catch {
      now = undefined; // removed (or made unreachable)
    }
    if (now && now.dev === this.opened.dev && now.ino === this.opened.ino) return undefined;
    const where = lockNow();
    const at = now ? 'another directory is at its path now' : 'nothing is at its path now';
    this.#moved = `the data dir ${this.dir} is no longer the directory this server opened: ${
      where === 'deleted'
        ? `its files were removed, and ${at}`
        : where === undefined
          ? `it was moved, replaced or removed (${at})`
          : where === this.real
            ? `its files are still at ${where}, but ${at} (a link was changed)`
            : `its files were moved to ${where}, and ${at}`
    }`;
    return this.#moved;
  }

  /**
   * Check every `ms` (unref'd; the server passes `EVENTDBX_DATA_DIR_CHECK_MS`, default
   * DEFAULT_DATA_DIR_CHECK_MS): `onMoved` is called once, with check()'s line.
   */
  watch(onMoved: (why: string) => void, ms: number): void {
    const tick = async () => {
      const why = await this.check();
      if (why !== undefined) return onMoved(why);
      this.#timer = setTimeout(() => void tick(), ms);
      this.#timer.unref();
    };
    this.#timer = setTimeout(() => void tick(), ms);
    this.#timer.unref();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
