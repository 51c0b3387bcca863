/**
 * The JSON and CSV sinks on a disk that fills up (QA qa-chaos items 1 and 2). A write to a filling
 * disk may store only part of its data without an error (Linux on a full tmpfs: 65,536 of 100,000
 * bytes, then ENOSPC on the next write). The sinks made one write per batch and did not check
 * `bytesWritten`: the batch counted as delivered with most of it missing, the next batch was glued
 * onto the torn record, and a CSV header widening replaced the file with a truncated copy.
 *
 * How the full disk is made: the files are real (a temp dir, node's own `open`), but the sinks open
 * them through their `OpenFile` seam with a wrapper whose writes take only the bytes left on a
 * simulated disk of a given size (a short write, then ENOSPC), as a real full disk does. A real full
 * disk is not portable: a small tmpfs or loop device needs root and `mount` (CI may have neither),
 * `ulimit -f` raises SIGXFSZ and EFBIG for the whole test process, and /dev/full never writes part of
 * a buffer (the QA report used a small tmpfs, as root). The wrapper is deterministic and runs
 * everywhere.
 */
import { open, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { EventRecord } from '../../src/core/event.js';
import { configurePlugin } from '../../src/plugins/index.js';
import { parseCsv } from '../../src/plugins/csv/rfc4180.js';
import { CsvSink } from '../../src/plugins/csv/sink.js';
import type { OpenFile } from '../../src/plugins/files.js';
import { JsonSink } from '../../src/plugins/json/sink.js';
import { DeliveryLoop } from '../../src/plugins/loop.js';
import { listDeadLetters, readConfig, readCursor } from '../../src/plugins/repository.js';
import { DeliveryFailure, type DeliveryItem, type Sink } from '../../src/plugins/types.js';
import type { EventStore } from '../../src/store/index.js';
import { tempDirs } from '../helpers/temp.js';
import { FAST, deliveryItems, jane, openStore, recordingLogger, waitFor } from './fixtures.js';

const tempDir = tempDirs('edbx-full-');
const closing: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const c of closing.splice(0).reverse()) await c.close();
});
const keep = <T extends { close(): Promise<void> }>(c: T): T => (closing.push(c), c);

interface Disk {
  /** Bytes left; writes take at most this many, then fail with ENOSPC. Infinity: space came back. */
  free: number;
  /** Most bytes one write stores even with space left (a disk that takes writes in pieces). */
  piece: number;
  /** The cut of a failed batch fails too (EIO). */
  failCut: boolean;
  readonly openFile: OpenFile;
}

const enospc = () =>
  Object.assign(new Error('ENOSPC: no space left on device, write'), {
    code: 'ENOSPC',
    errno: -28,
    syscall: 'write',
  });

/** A simulated disk with `free` bytes left, shared by every file the sink opens through it. */
function fillingDisk(free: number): Disk {
  const disk: Disk = {
    free,
    piece: Infinity,
    failCut: false,
    openFile: async (file, flags, mode) => {
      const fh = await open(file, flags, mode);
      // Both forms the sinks may use: write(string) and write(buffer, offset, length).
      const write = async (data: string | Buffer, offset = 0, length?: number) => {
        const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
        const want = length ?? buf.length - offset;
        if (want > 0 && disk.free <= 0) throw enospc();
        const { bytesWritten } = await fh.write(buf, offset, Math.min(want, disk.free, disk.piece));
        disk.free -= bytesWritten;
        return { bytesWritten, buffer: data };
      };
      const truncate = async (len = 0) => {
        if (disk.failCut) throw Object.assign(new Error('EIO: i/o error, ftruncate'), { code: 'EIO' });
        const { size } = await fh.stat();
        await fh.truncate(len);
        disk.free += Math.max(0, size - len);
      };
      return new Proxy(fh, {
        get(target, prop) {
          if (prop === 'write') return write;
          if (prop === 'truncate') return truncate;
          const v: unknown = Reflect.get(target, prop, target);
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    },
  };
  return disk;
}

/** Items whose payload is about `bytes` long, so a disk of a given size holds a known number. */
function bigItems(count: number, from: number, bytes = 1000): DeliveryItem[] {
  return deliveryItems(count, from).map((item) => {
    const state = { ...item.record.payload, body: 'x'.repeat(bytes) };
    return { record: { ...item.record, payload: state }, row: { ...item.row!, state } };
  });
}

/** The sink's failure, checked to be a coded one that says the disk is full. */
async function fullDiskFailure(delivery: Promise<void>, target: string): Promise<DeliveryFailure> {
  const f = await delivery.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(f).toBeInstanceOf(DeliveryFailure);
  const failure = f as DeliveryFailure;
  expect(failure.error.code).toBe('EDBX_ERR_PLUGIN_DELIVERY');
  expect(failure.error.message).toContain('(ENOSPC)');
  expect(failure.error.message).toContain(target);
  expect(failure.error.message).not.toContain('\n');
  expect(failure.delivered).toBe(0);
  return failure;
}

/** The positions of a JSON Lines file; every line must be a whole record. */
async function jsonLines(file: string): Promise<number[]> {
  const text = await readFile(file, 'utf8');
  expect(text === '' || text.endsWith('\n')).toBe(true);
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as EventRecord).position);
}

/** `id@version` of each CSV row; the file must end on a whole row. */
async function csvRows(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8');
  expect(text === '' || text.endsWith('\r\n')).toBe(true);
  return parseCsv(text)
    .records.slice(1)
    .map((r) => `${r[0]}@${r[1]}`);
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const rowsOf = (items: readonly DeliveryItem[]) =>
  items.map((i) => `${i.record.aggregate_id}@${i.record.version}`);

describe('JSON sink on a filling disk (qa-chaos #1)', () => {
  for (const pretty of [false, true]) {
    const mode = pretty ? '--pretty' : 'JSON Lines';
    it(`a short write fails the batch, the file keeps only whole batches, the retry writes the rest once (${mode})`, async () => {
      const file = path.join(await tempDir(), 'events.json');
      const disk = fillingDisk(Infinity);
      const sink = keep(new JsonSink({ path: file, pretty }, disk.openFile));
      await sink.deliver(bigItems(3, 1));
      const before = await readFile(file);
      // Room for about two and a half more records: the batch of ten cannot be written whole.
      disk.free = 2500;
      const failure = await fullDiskFailure(sink.deliver(bigItems(10, 4)), file);
      // Cut back to the batch's start: nothing of it is in the file, so nothing of it may be there.
      expect(failure.maybeWritten).toBe(false);
      expect(await readFile(file)).toEqual(before);
      // Still full: the same, again.
      await fullDiskFailure(sink.deliver(bigItems(10, 4)), file);
      expect(await readFile(file)).toEqual(before);

      disk.free = Infinity;
      await sink.deliver(bigItems(10, 4));
      await sink.deliver(bigItems(1, 14));
      const text = await readFile(file, 'utf8');
      const positions = text
        .split(/\n(?=\{)/)
        .filter((r) => r.trim())
        .map((r) => (JSON.parse(r) as EventRecord).position);
      expect(positions).toEqual(range(1, 14));
    });
  }

  it('a write that stores only part of its data is continued, not counted as done', async () => {
    const file = path.join(await tempDir(), 'events.jsonl');
    const disk = fillingDisk(Infinity);
    disk.piece = 4096;
    const sink = keep(new JsonSink({ path: file, pretty: false }, disk.openFile));
    await sink.deliver(bigItems(20, 1));
    expect(await jsonLines(file)).toEqual(range(1, 20));
  });

  it('a failed cut says the batch may be in the file; the torn record is cut off on reopen, each event written once', async () => {
    const file = path.join(await tempDir(), 'events.jsonl');
    const disk = fillingDisk(Infinity);
    const sink = keep(new JsonSink({ path: file, pretty: false }, disk.openFile));
    await sink.deliver(bigItems(2, 1));
    disk.free = 2500;
    disk.failCut = true;
    const failure = await fullDiskFailure(sink.deliver(bigItems(5, 3)), file);
    expect(failure.maybeWritten).toBe(true);
    disk.failCut = false;
    disk.free = Infinity;
    // Redelivered in order: the whole records of the failed batch are skipped, the torn one rewritten.
    await sink.deliver(bigItems(5, 3));
    expect(await jsonLines(file)).toEqual(range(1, 7));
  });
});

describe('CSV sink on a filling disk (qa-chaos #1)', () => {
  /** `count` events alternating between two aggregate types (two files), positions from `from`. */
  const twoTypes = (count: number, from: number) =>
    bigItems(count, from).map((item, i) =>
      i % 2 === 0 ? item : { ...item, record: { ...item.record, aggregate_type: 'doctor' } },
    );

  it('a batch that does not fit is cut off every file it touched; the retry writes the rest once', async () => {
    const dir = await tempDir();
    const disk = fillingDisk(Infinity);
    const sink = keep(new CsvSink({ output_dir: dir }, disk.openFile));
    const first = twoTypes(4, 1);
    await sink.deliver(first);
    const files = ['patient.csv', 'doctor.csv'].map((f) => path.join(dir, f));
    const before = await Promise.all(files.map((f) => readFile(f)));
    // The patient rows fit; the doctor rows, written after them, do not.
    disk.free = 4500;
    const batch = twoTypes(8, 5);
    const failure = await fullDiskFailure(sink.deliver(batch), dir);
    expect(failure.maybeWritten).toBe(false);
    for (const [i, f] of files.entries()) expect(await readFile(f)).toEqual(before[i]);

    disk.free = Infinity;
    await sink.deliver(batch);
    const all = [...first, ...batch];
    expect(await csvRows(files[0]!)).toEqual(
      rowsOf(all.filter((i) => i.record.aggregate_type === 'patient')),
    );
    expect(await csvRows(files[1]!)).toEqual(rowsOf(all.filter((i) => i.record.aggregate_type === 'doctor')));
  });

  it('a failed cut says the batch may be in the file; the retry writes each row once', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'patient.csv');
    const disk = fillingDisk(Infinity);
    const sink = keep(new CsvSink({ output_dir: dir }, disk.openFile));
    await sink.deliver(bigItems(2, 1));
    disk.free = 2500;
    disk.failCut = true;
    const failure = await fullDiskFailure(sink.deliver(bigItems(5, 3)), dir);
    expect(failure.maybeWritten).toBe(true);
    disk.failCut = false;
    disk.free = Infinity;
    await sink.deliver(bigItems(5, 3));
    expect(await csvRows(file)).toEqual(rowsOf(bigItems(7, 1)));
  });
});

describe('CSV header widening on a filling disk (qa-chaos #2)', () => {
  /** An item whose state brings a new field: the header is widened, the file rewritten. */
  const withNewField = (position: number): DeliveryItem => {
    const [item] = bigItems(1, position);
    return { ...item!, row: { ...item!.row!, state: { ...item!.row!.state, extra: 'e' } } };
  };

  it('a copy that does not fit never replaces the file: it stays byte for byte, the copy is removed', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'patient.csv');
    const disk = fillingDisk(Infinity);
    const sink = keep(new CsvSink({ output_dir: dir }, disk.openFile));
    const first = bigItems(6, 1);
    await sink.deliver(first);
    const before = await readFile(file);
    // Less room than the copy needs (it is a little larger than the file).
    disk.free = before.length - 1000;
    const failure = await fullDiskFailure(sink.deliver([withNewField(7)]), dir);
    expect(failure.maybeWritten).toBe(false);
    expect(await readFile(file)).toEqual(before);
    expect(await readdir(dir)).toEqual(['patient.csv']);

    disk.free = Infinity;
    await sink.deliver([withNewField(7)]);
    const { records } = parseCsv(await readFile(file, 'utf8'));
    expect(records[0]).toContain('extra');
    expect(records.slice(1).map((r) => `${r[0]}@${r[1]}`)).toEqual(rowsOf([...first, withNewField(7)]));
    // The rows delivered before the widening are whole: same cells, padded.
    const body = records[0]!.indexOf('body');
    for (const r of records.slice(1)) expect(r[body]).toBe('x'.repeat(1000));
    expect(records.at(-1)![records[0]!.indexOf('extra')]).toBe('e');
  });
});

describe('a delivery host over a file sink on a filling disk (qa-chaos #1)', () => {
  const ev = (n: number) => ({
    aggregate_type: 'doc',
    aggregate_id: `d-${n % 3}`,
    event_type: 'put',
    payload: { n: String(n), body: 'x'.repeat(1000) },
  });

  async function loopOver(name: 'json' | 'csv', file: string, sink: Sink, maxAttempts: number) {
    const store: EventStore = keep(await openStore());
    const settings = name === 'json' ? { path: file } : { output_dir: file };
    await configurePlugin(store, name, { ...settings, ...FAST, max_attempts: maxAttempts }, jane);
    const log = recordingLogger();
    const loop = new DeliveryLoop(store, (await readConfig(store, name))!, sink, log, { position: 1 });
    // Stopped before the store closes (closed last-kept first); stopping closes the sink.
    keep({ close: () => loop.stop() });
    store.onCommit(() => loop.notifyCommit());
    return { store, loop, log };
  }

  it('counts as delivered only what is wholly in the file, says ENOSPC, and catches up once space returns', async () => {
    const file = path.join(await tempDir(), 'events.jsonl');
    const disk = fillingDisk(Infinity);
    const sink = new JsonSink({ path: file, pretty: false }, disk.openFile);
    const { store, loop, log } = await loopOver('json', file, sink, 1_000_000);
    loop.start();
    for (let n = 1; n <= 5; n++) await store.append(ev(n), jane);
    await waitFor('the first events delivered', () => loop.stats().delivered === 5);
    // Room for about three more of the next ten events.
    disk.free = 3500;
    for (let n = 6; n <= 15; n++) await store.append(ev(n), jane);
    await waitFor('a full-disk error', () => loop.stats().last_error?.message.includes('ENOSPC'));
    await waitFor('retries', () => loop.stats().retries >= 3);
    // Stopped, so that no retry is writing (and cutting back) while the file is read.
    await loop.stop();
    const stats = loop.stats();
    const held = await jsonLines(file);
    expect(held).toHaveLength(stats.delivered);
    expect(held.at(-1)).toBe(stats.cursor - 1);
    expect(stats.delivered).toBeLessThan(15);
    expect(stats.last_error).toMatchObject({ code: 'EDBX_ERR_PLUGIN_DELIVERY' });
    expect(stats.last_error!.message).toContain(`cannot write ${file}`);
    const warned = log.lines.filter((l) => l.level === 'warn' && l.msg.includes('ENOSPC'));
    expect(warned.length).toBeGreaterThan(0);

    // Space comes back; the server starts again from the durable cursor.
    disk.free = Infinity;
    const events = (await store.readLog(1, 100)).filter((e) => !e.aggregate_type.startsWith('$'));
    const again = new DeliveryLoop(store, loop.config, sink, log, (await readCursor(store, 'json'))!);
    keep({ close: () => again.stop() });
    again.start();
    await waitFor('caught up', () => again.stats().cursor > events.at(-1)!.position);
    await again.stop();
    expect(again.stats().delivered).toBe(15 - stats.delivered);
    expect(await jsonLines(file)).toEqual(events.map((e) => e.position));
  });

  for (const name of ['json', 'csv'] as const) {
    it(`dead-letters what does not fit; plugin retry writes exactly the missing events once (${name})`, async () => {
      const dir = await tempDir();
      const file = name === 'json' ? path.join(dir, 'events.jsonl') : dir;
      const disk = fillingDisk(Infinity);
      const sink =
        name === 'json'
          ? new JsonSink({ path: file, pretty: false }, disk.openFile)
          : new CsvSink({ output_dir: dir }, disk.openFile);
      const { store, loop } = await loopOver(name, file, sink, 2);
      // The QA run: a backfill of events that do not all fit.
      await store.appendMany(
        range(1, 12).map((n) => ev(n)),
        jane,
      );
      disk.free = 6500;
      loop.start();
      // Idle past the last event: its dead letter is stored (the cursor moves before it is).
      await waitFor(
        'past every event',
        () => loop.stats().state === 'idle' && loop.stats().cursor > store.size,
      );
      const events = (await store.readLog(1, 100)).filter((e) => !e.aggregate_type.startsWith('$'));
      const letters = await listDeadLetters(store, name);
      expect(letters.length).toBeGreaterThan(0);
      for (const d of letters) expect(d.reason).toContain('(ENOSPC)');
      const key = (e: { aggregate_id: string; version: number; position: number }) =>
        name === 'json' ? String(e.position) : `${e.aggregate_id}@${e.version}`;
      const read = async () =>
        name === 'json' ? (await jsonLines(file)).map(String) : await csvRows(path.join(dir, 'doc.csv'));
      // Every event is in the file or a dead letter, never both, never neither.
      const lettered = new Set(letters.map((d) => d.position));
      expect(await read()).toEqual(events.filter((e) => !lettered.has(e.position)).map(key));
      expect(loop.stats().delivered).toBe(events.length - letters.length);

      disk.free = Infinity;
      expect(await loop.requestRetry()).toEqual({
        retried: letters.length,
        delivered: letters.length,
        failed: 0,
      });
      await loop.stop();
      const held = await read();
      expect([...held].sort()).toEqual(events.map(key).sort());
      expect(new Set(held).size).toBe(events.length);
      expect(await listDeadLetters(store, name)).toEqual([]);
    });
  }
});
