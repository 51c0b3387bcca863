/**
 * JSON sink: appends each `EventRecord` to a file, one JSON document per line (JSON Lines), or
 * indented with `--pretty` (documents separated by a newline; read them back with `jq -c . file`).
 * A batch is one append and one fsync; a record torn by a crash is cut off when the file is reopened.
 * A batch is in the file whole or not at all: a write to a filling disk may store only part of its
 * data without an error, so every byte is written in a loop (the next write then fails with ENOSPC),
 * and a batch whose write or fsync failed is cut off again before the failure is reported. Only when
 * that cut fails too may its records be in the file: the failure says so (`maybeWritten`).
 *
 * Each event is written once, crashes included: the durable cursor trails delivery, so after a crash
 * the last events arrive again, in position order. The sink knows the highest position its file holds
 * (read once when it opens the file, then kept) and skips what arrives in order at or below it; a dead
 * letter delivered again by `plugin retry` is written all the same, unless an earlier retry of it may
 * have written it (a crash before the letter was removed, a failed fsync): then the sink looks for its
 * position in the file first.
 *
 * Records carry their position and hash: the last one (and the highest position) is what the host
 * compares with the store before it delivers (divergence.ts), and `--rebuild` moves the file aside.
 */
import { type FileHandle, open } from 'node:fs/promises';
import path from 'node:path';
import {
  type OpenFile,
  PRIVATE_DIR,
  PRIVATE_FILE,
  cutBack,
  fileFailureReason,
  holdsPosition,
  lastRecord,
  maxPosition,
  moveAside,
  refuseSpecialFile,
  repairTail,
  sameFile,
  statOrNone,
  stillAt,
  writeAll,
} from '../files.js';
import {
  type DeliveryItem,
  type HeldEvent,
  type JsonSettings,
  type Sink,
  transientFailure,
} from '../types.js';
import { makeDir } from '../../fs/make-dir.js';

/** A record as the file holds it; anything else (a line someone added by hand) is not one. */
function parsed(text: string): { position?: unknown; hash?: unknown } | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null ? v : undefined;
  } catch {
    return undefined;
  }
}

/** The file as this sink last synced it: `high` is the highest position in its first `size` bytes. */
interface Known {
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
  readonly high: number;
}

export class JsonSink implements Sink {
  readonly needsState = false;
  readonly batchSize = 1000;
  #handle: FileHandle | undefined;
  #known: Known | undefined;

  constructor(
    private readonly settings: JsonSettings,
    private readonly openFile: OpenFile = open,
  ) {}

  async #open(): Promise<{ fh: FileHandle; high: number }> {
    // Deleted (or replaced) while open: appending through the old handle would lose the records.
    if (this.#handle && !(await stillAt(this.#handle, this.settings.path))) await this.close();
    if (!this.#handle) {
      makeDir(path.dirname(this.settings.path), PRIVATE_DIR);
      refuseSpecialFile(this.settings.path, await statOrNone(this.settings.path));
      // A pretty document ends with a `}` at the start of a line (nested ones are indented).
      await repairTail(this.settings.path, this.settings.pretty ? '\n}\n' : '\n');
      const fh = await this.openFile(this.settings.path, 'a', PRIVATE_FILE);
      try {
        // What the file holds may still be only in the page cache (written by a process killed before
        // its fsync): make it durable before trusting it to skip events.
        await fh.datasync();
        const st = await fh.stat();
        const known = this.#known;
        // Only what was appended since this sink last synced the file (a failed batch) is read again.
        const from = known && sameFile(st, known) && st.size >= known.size ? known : undefined;
        const high = Math.max(from?.high ?? 0, await maxPosition(this.settings.path, from?.size ?? 0));
        this.#known = { dev: st.dev, ino: st.ino, size: st.size, high };
      } catch (e) {
        await fh.close().catch(() => undefined);
        throw e;
      }
      this.#handle = fh;
    }
    return { fh: this.#handle, high: this.#known!.high };
  }

  async deliver(items: readonly DeliveryItem[]): Promise<void> {
    /** Set once the batch's write begins: the handle and the length to cut back to if it fails. */
    let writing: { fh: FileHandle; size: number } | undefined;
    try {
      const { fh, high } = await this.#open();
      const fresh: DeliveryItem[] = [];
      for (const item of items) {
        const { record, retry, maybeDelivered } = item;
        // Redelivered in order after a crash (or a failed batch): already in the file. A dead letter
        // is written below what the file holds, unless an earlier retry of it may have written it.
        const held = retry
          ? maybeDelivered === true && (await holdsPosition(this.settings.path, record.position))
          : record.position <= high;
        if (!held) fresh.push(item);
      }
      if (fresh.length === 0) return;
      const text = fresh
        .map(
          ({ record }) =>
            `${this.settings.pretty ? JSON.stringify(record, null, 2) : JSON.stringify(record)}\n`,
        )
        .join('');
      writing = { fh, size: (await fh.stat()).size };
      await writeAll(fh, text);
      await fh.datasync();
      const st = await fh.stat();
      this.#known = {
        dev: st.dev,
        ino: st.ino,
        size: st.size,
        high: Math.max(high, ...fresh.map(({ record }) => record.position)),
      };
    } catch (e) {
      const torn = writing !== undefined && !(await cutBack(writing.fh, writing.size));
      await this.close();
      throw transientFailure('json', fileFailureReason('json', this.settings.path, e), 0, torn);
    }
  }

  /** The last record of the file (the newest delivered), and its highest position if that is another. */
  async held(): Promise<HeldEvent[]> {
    try {
      const { high } = await this.#open();
      const text = await lastRecord(this.settings.path, this.settings.pretty ? '\n}\n' : '\n');
      const last = text === undefined ? undefined : parsed(text);
      const out: HeldEvent[] = [];
      if (typeof last?.position === 'number' && typeof last.hash === 'string')
        out.push({ position: last.position, hash: last.hash });
      // A dead letter retried last is below what the file holds: its highest position is checked too.
      if (high > 0 && (out.length === 0 || high > Number(last?.position))) out.push({ position: high });
      return out;
    } catch (e) {
      await this.close();
      throw transientFailure('json', fileFailureReason('json', this.settings.path, e), 0);
    }
  }

  /** Move the file aside (`plugin replay --rebuild`). */
  async clear(_types: readonly string[], suffix: string): Promise<string[]> {
    await this.close();
    this.#known = undefined;
    return moveAside(this.settings.path, suffix);
  }

  async close(): Promise<void> {
    const fh = this.#handle;
    this.#handle = undefined;
    await fh?.close().catch(() => undefined);
  }
}
