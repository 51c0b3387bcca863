/**
 * A file sink's output deleted while the server runs (QA item 3): the sink notices that the path no
 * longer names its open file and creates it again, so later events are not written into a file nobody
 * can read (they were counted as delivered and lost).
 */
import Database from 'better-sqlite3';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { EventRecord } from '../../src/core/event.js';
import { parseCsv } from '../../src/plugins/csv/rfc4180.js';
import { CsvSink } from '../../src/plugins/csv/sink.js';
import { JsonSink } from '../../src/plugins/json/sink.js';
import { parseDataType } from '../../src/plugins/sql/datatypes.js';
import { SqliteSink } from '../../src/plugins/sqlite/sink.js';
import { DeliveryFailure, type Sink } from '../../src/plugins/types.js';
import { tempDirs } from '../helpers/temp.js';
import { deliveryItems } from './fixtures.js';

const tempDir = tempDirs('edbx-deleted-');
const sinks: Sink[] = [];
afterEach(async () => {
  await Promise.all(sinks.splice(0).map((s) => s.close()));
});

function keep<S extends Sink>(s: S): S {
  sinks.push(s);
  return s;
}

describe('output deleted while the sink has it open (QA item 3)', () => {
  it('CSV: a deleted file, then a deleted output directory, are created again with a header', async () => {
    const dir = path.join(await tempDir(), 'csv');
    const file = path.join(dir, 'patient.csv');
    const sink = keep(new CsvSink({ output_dir: dir }));
    await sink.deliver(deliveryItems(1, 1));
    await rm(file);
    await sink.deliver(deliveryItems(1, 2));
    const after = parseCsv(await readFile(file, 'utf8')).records;
    expect(after.map((r) => r[0])).toEqual(['id', 'p-2']);
    await rm(dir, { recursive: true });
    await sink.deliver(deliveryItems(1, 3));
    expect(parseCsv(await readFile(file, 'utf8')).records.map((r) => r[0])).toEqual(['id', 'p-3']);
  });

  it('JSON: a deleted file, then a deleted directory, are created again', async () => {
    const file = path.join(await tempDir(), 'out', 'events.jsonl');
    const sink = keep(new JsonSink({ path: file, pretty: false }));
    await sink.deliver(deliveryItems(1, 1));
    await rm(file);
    await sink.deliver(deliveryItems(1, 2));
    const ids = async () =>
      (await readFile(file, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as EventRecord).aggregate_id);
    expect(await ids()).toEqual(['p-2']);
    await rm(path.dirname(file), { recursive: true });
    await sink.deliver(deliveryItems(1, 3));
    expect(await ids()).toEqual(['p-3']);
  });

  it('SQLite: a deleted database file is created again, with its table', async () => {
    const file = path.join(await tempDir(), 'mirror.db');
    const sink = keep(new SqliteSink({ path: file }, () => parseDataType('text')));
    await sink.deliver(deliveryItems(1, 1));
    await rm(file);
    await sink.deliver(deliveryItems(1, 2));
    const db = new Database(file, { readonly: true });
    try {
      expect(db.prepare('SELECT id, name FROM patient').all()).toEqual([{ id: 'p-2', name: 'patient 2' }]);
    } finally {
      db.close();
    }
  });
});

describe('a target that is a named pipe (a pool thread blocked on it forever)', () => {
  it('CSV, JSON and SQLite fail the delivery naming it, then deliver once it is gone', async () => {
    const dir = await tempDir();
    const cases: Array<[string, Sink]> = [
      [path.join(dir, 'csv', 'patient.csv'), new CsvSink({ output_dir: path.join(dir, 'csv') })],
      [path.join(dir, 'events.jsonl'), new JsonSink({ path: path.join(dir, 'events.jsonl'), pretty: false })],
      [
        path.join(dir, 'mirror.db'),
        new SqliteSink({ path: path.join(dir, 'mirror.db') }, () => parseDataType('text')),
      ],
    ];
    for (const [file, sink] of cases) {
      keep(sink);
      await mkdir(path.dirname(file), { recursive: true });
      execFileSync('mkfifo', [file]);
      const failed = await sink.deliver(deliveryItems(1, 1)).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(failed).toBeInstanceOf(DeliveryFailure);
      expect((failed as DeliveryFailure).permanent).toBe(false);
      expect((failed as DeliveryFailure).message).toContain(`${file} is a named pipe, not a regular file`);
      await rm(file);
      await sink.deliver(deliveryItems(1, 1));
      expect((await stat(file)).isFile()).toBe(true);
    }
  });
});
