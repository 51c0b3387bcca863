/**
 * CSV sink: `<output-dir>/<aggregate>.csv` per aggregate type, one RFC 4180 row per event with the
 * aggregate state at that event. When a new field appears the header is widened: the file is
 * rewritten with the wider header and padded rows into a temporary file that replaces it atomically
 * (fsync, rename, fsync of the directory), so a crash leaves either the old or the new file.
 *
 * Each event is written once, crashes included. The durable cursor trails delivery, so after a crash
 * the last events arrive again, in position order; the rows already in a file are the first of them
 * (for that file). A row names its event exactly by `id` and `version`, so when the sink opens a file
 * it notes the highest version of each aggregate in it, and skips the events that arrive at or below
 * it, until the first one the file does not hold (from there on none are, and the note is dropped). A
 * dead letter delivered again by `plugin retry` is written all the same, unless an earlier retry of it
 * may have written it (a crash before the letter was removed, a failed fsync): then the sink looks for
 * a row with its `id` and `version` first.
 *
 * A batch is in the files whole or not at all. A write to a filling disk may store only part of its
 * data without an error, so every byte is written in a loop (the next write then fails with ENOSPC);
 * when a write or fsync of the batch fails, every file it appended to is cut back to its length before
 * the batch. Only when a cut fails too may rows of the batch be in a file: the failure says so
 * (`maybeWritten`). A widening that fails removes its temporary file and leaves the file untouched.
 *
 * The last row of each file (`id`, `version`, `event_id`) is what the host compares with the store's
 * event before it delivers (divergence.ts): a store restored from a backup writes versions these
 * rows already have, which would be skipped as held. `--rebuild` moves the files aside.
 */
import { createReadStream } from 'node:fs';
import { type FileHandle, open, readdir, rename, rm, stat, truncate } from 'node:fs/promises';
import path from 'node:path';
import { fieldColumn, issuerText } from '../columns.js';
import {
  type OpenFile,
  PRIVATE_DIR,
  PRIVATE_FILE,
  cutBack,
  fileFailureReason,
  moveAside,
  refuseSpecialFile,
  statOrNone,
  stillAt,
  syncDir,
  writeAll,
} from '../files.js';
import {
  type CsvSettings,
  type DeliveryItem,
  type HeldEvent,
  type Sink,
  transientFailure,
} from '../types.js';
import { type CsvRecord, formatRecord, padRecords, walkCsv } from './rfc4180.js';
import { makeDir } from '../../fs/make-dir.js';

/** Columns before the fields. */
export const CSV_COLUMNS = [
  'id',
  'version',
  'event',
  'event_id',
  'created_at',
  'created_by',
  'updated_at',
  'updated_by',
] as const;
const RESERVED: ReadonlySet<string> = new Set(CSV_COLUMNS);

/**
 * Read `file` once: its header, each row's `id` and `version` cells (as text) given to `row` until it
 * returns true, and where the last complete record ends (a record torn by a crash is after it). Only
 * those two cells are decoded: on a file of hundreds of megabytes this is what opening costs.
 */
async function scanRows(
  file: string,
  row: (id: string | undefined, version: string | undefined) => boolean | void,
): Promise<{ header: string[] | undefined; end: number; last: CsvRecord | undefined }> {
  let header: string[] | undefined;
  let last: CsvRecord | undefined;
  let at = { id: -1, version: -1 };
  let end = 0;
  // The sink's own header starts with id and version: two commas' offsets find both cells.
  const lead = 2;
  const cell = (r: CsvRecord, k: number) => (k < 0 ? undefined : k < lead ? r.field(k) : r.all()[k]);
  try {
    const chunks = createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>;
    for await (const chunk of walkCsv(chunks, lead)) {
      end = chunk.end;
      for (const r of chunk.records) {
        if (!header) {
          header = r.all();
          at = { id: header.indexOf('id'), version: header.indexOf('version') };
        } else {
          last = r;
          if (row(cell(r, at.id), cell(r, at.version)) === true) return { header, end, last };
        }
      }
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  return { header, end, last };
}

class CsvFile {
  /** The file's length before the rows of the batch being written: what a failed batch is cut to. */
  #before: number | undefined;

  private constructor(
    readonly file: string,
    private readonly openFile: OpenFile,
    private header: string[],
    private index: Map<string, number>,
    private handle: FileHandle,
    /** Highest version of each aggregate in the file as opened; dropped at the first new event. */
    private written: Map<string, number> | undefined,
    /** The file's last row as opened: its event, to compare with the store's. */
    readonly newest: { id: string; version: number; event_id: string } | undefined,
  ) {}

  /** Open for appends, cutting off a row torn by a crash. */
  static async open(file: string, openFile: OpenFile): Promise<CsvFile> {
    await rm(`${file}.widening`, { force: true });
    refuseSpecialFile(file, await statOrNone(file));
    const written = new Map<string, number>();
    const {
      header = [],
      end,
      last,
    } = await scanRows(file, (key, version) => {
      const v = Number(version);
      if (key !== undefined && Number.isSafeInteger(v) && v > (written.get(key) ?? 0)) written.set(key, v);
    });
    const size = (await statOrNone(file))?.size ?? 0;
    if (end < size) await truncate(file, end);
    const handle = await openFile(file, 'a', PRIVATE_FILE);
    try {
      // What the file holds may still be only in the page cache (written by a process killed before
      // its fsync): make it durable before trusting it to skip events.
      await handle.datasync();
    } catch (e) {
      await handle.close().catch(() => undefined);
      throw e;
    }
    const cells = last?.all();
    const cell = (name: string) => cells?.[header.indexOf(name)];
    const [id, version, eventId] = [cell('id'), Number(cell('version')), cell('event_id')];
    const newest =
      id !== undefined && eventId !== undefined && Number.isSafeInteger(version)
        ? { id, version, event_id: eventId }
        : undefined;
    return new CsvFile(
      file,
      openFile,
      header,
      new Map(header.map((c, i) => [c, i])),
      handle,
      written,
      newest,
    );
  }

  /**
   * Whether the file already holds this event, delivered again in order after a crash or a failed
   * batch. The first event it does not hold ends the check: every later one is new too.
   */
  holds(id: string, version: number): boolean {
    const v = this.written?.get(id);
    if (v !== undefined && version <= v) return true;
    this.written = undefined;
    return false;
  }

  /** Whether any row of the file is this event (reads the whole file: only for a dead letter in doubt). */
  async contains(id: string, version: number): Promise<boolean> {
    let found = false;
    await scanRows(this.file, (key, v) => (found = key === id && Number(v) === version));
    return found;
  }

  /** Append rows (column → value); widens the header first when a row has a new column. */
  async append(rows: ReadonlyArray<ReadonlyMap<string, string>>): Promise<void> {
    this.#before = undefined;
    const wasEmpty = this.header.length === 0;
    const added: string[] = [];
    for (const r of rows) {
      for (const c of r.keys()) if (!this.index.has(c) && !added.includes(c)) added.push(c);
    }
    if (added.length > 0) {
      const header = [...this.header, ...added];
      if (!wasEmpty) await this.#widen(header);
      this.header = header;
      this.index = new Map(header.map((c, i) => [c, i]));
    }
    const lines = rows.map((r) => formatRecord(this.header.map((c) => r.get(c) ?? '')));
    if (wasEmpty) lines.unshift(formatRecord(this.header));
    // Taken after a widening: the wider file is whole (it replaced the old one atomically).
    this.#before = (await this.handle.stat()).size;
    await writeAll(this.handle, lines.join(''));
  }

  /**
   * Cut off the rows the failed batch appended (durably). False when the cut failed: they may be in
   * the file, whole or torn (the next open cuts a torn row off).
   */
  async cutBatch(): Promise<boolean> {
    const before = this.#before;
    this.#before = undefined;
    return before === undefined || (await cutBack(this.handle, before));
  }

  /** Whether the path still names the open file (not deleted, nor replaced by someone else). */
  current(): Promise<boolean> {
    return stillAt(this.handle, this.file);
  }

  async sync(): Promise<void> {
    await this.handle.datasync();
  }

  /**
   * Rewrite the file with a wider header into a temporary file that replaces it. Every write of the
   * copy is checked and the copy is synced before the rename: a short copy (a full disk) must never
   * replace the file. On any failure before the rename the copy is removed and the file is as it was.
   */
  async #widen(header: string[]): Promise<void> {
    const tmp = `${this.file}.widening`;
    try {
      const out = await this.openFile(tmp, 'w', PRIVATE_FILE);
      try {
        await writeAll(out, formatRecord(header));
        const rows = createReadStream(this.file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>;
        for await (const padded of padRecords(rows, header.length)) await writeAll(out, padded);
        // The rewritten file replaces the file as it was: it keeps its mode (a user's 0644 stays 0644).
        await out.chmod((await stat(this.file)).mode & 0o7777);
        await out.sync();
      } finally {
        await out.close();
      }
    } catch (e) {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw e;
    }
    await rename(tmp, this.file);
    const old = this.handle;
    this.handle = await this.openFile(this.file, 'a');
    await old.close();
    await syncDir(path.dirname(this.file));
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }
}

export class CsvSink implements Sink {
  readonly needsState = true;
  readonly batchSize = 500;
  readonly #files = new Map<string, CsvFile>();

  constructor(
    private readonly settings: CsvSettings,
    private readonly openFile: OpenFile = open,
  ) {}

  async deliver(items: readonly DeliveryItem[]): Promise<void> {
    const touched: CsvFile[] = [];
    try {
      makeDir(this.settings.output_dir, PRIVATE_DIR);
      const files = new Map<string, CsvFile>();
      const byFile = new Map<CsvFile, Array<Map<string, string>>>();
      for (const { record, row, retry, maybeDelivered } of items) {
        let file = files.get(record.aggregate_type);
        if (!file) files.set(record.aggregate_type, (file = await this.#file(record.aggregate_type)));
        const list = byFile.get(file) ?? [];
        byFile.set(file, list);
        // A dead letter is written below what the file holds, unless an earlier retry may have.
        const held = retry
          ? maybeDelivered === true && (await file.contains(record.aggregate_id, record.version))
          : file.holds(record.aggregate_id, record.version);
        if (held) continue;
        const cells = new Map<string, string>([
          ['id', record.aggregate_id],
          ['version', String(record.version)],
          ['event', record.event_type],
          ['event_id', record.metadata.event_id],
          ['created_at', row!.created_at],
          ['created_by', issuerText(row!.created_by)],
          ['updated_at', record.metadata.created_at],
          ['updated_by', issuerText(record.metadata.issued_by)],
        ]);
        for (const [field, value] of Object.entries(row!.state))
          cells.set(fieldColumn(field, RESERVED), value);
        list.push(cells);
      }
      for (const [f, rows] of byFile) {
        if (rows.length === 0) continue;
        touched.push(f);
        await f.append(rows);
      }
      for (const f of touched) await f.sync();
    } catch (e) {
      // Every file the batch appended to is cut back: none keeps part of a batch reported failed.
      let torn = false;
      for (const f of touched) if (!(await f.cutBatch())) torn = true;
      // Reopen (and repair) the files on the next try.
      await this.close();
      throw transientFailure('csv', fileFailureReason('csv', this.settings.output_dir, e), 0, torn);
    }
  }

  /** The last row of each file in the directory (aggregate type = file name). */
  async held(): Promise<HeldEvent[]> {
    try {
      const out: HeldEvent[] = [];
      for (const type of await this.#types()) {
        const n = (await this.#file(type)).newest;
        if (n)
          out.push({ aggregate_type: type, aggregate_id: n.id, version: n.version, event_id: n.event_id });
      }
      return out;
    } catch (e) {
      await this.close();
      throw transientFailure('csv', fileFailureReason('csv', this.settings.output_dir, e), 0);
    }
  }

  /** Move every file aside (`plugin replay --rebuild`). */
  async clear(_types: readonly string[], suffix: string): Promise<string[]> {
    await this.close();
    const done: string[] = [];
    for (const type of await this.#types())
      done.push(...(await moveAside(path.join(this.settings.output_dir, `${type}.csv`), suffix)));
    return done;
  }

  /** The aggregate types the directory has a file of. */
  async #types(): Promise<string[]> {
    try {
      const names = await readdir(this.settings.output_dir);
      return names.filter((n) => n.endsWith('.csv') && n.length > 4).map((n) => n.slice(0, -4));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  async #file(type: string): Promise<CsvFile> {
    let f = this.#files.get(type);
    if (f && !(await f.current())) {
      // Deleted (or the directory was) while open: start a new file, header first.
      await f.close();
      f = undefined;
    }
    if (!f) {
      f = await CsvFile.open(path.join(this.settings.output_dir, `${type}.csv`), this.openFile);
      this.#files.set(type, f);
    }
    return f;
  }

  async close(): Promise<void> {
    const files = [...this.#files.values()];
    this.#files.clear();
    for (const f of files) await f.close();
  }
}
