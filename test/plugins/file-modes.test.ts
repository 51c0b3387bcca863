/**
 * Sink outputs are owner-only (QA qa2-ops item 9): the CSV, JSON and SQLite files are plaintext copies
 * of payloads that are encrypted at rest in the store, and were created 0644 in 0755 directories. New
 * files are 0600 and new directories 0700; files and directories that exist keep their modes.
 */
import { chmod, mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CsvSink } from '../../src/plugins/csv/sink.js';
import { JsonSink } from '../../src/plugins/json/sink.js';
import { parseDataType } from '../../src/plugins/sql/datatypes.js';
import { SqliteSink } from '../../src/plugins/sqlite/sink.js';
import { holdPrivateUmask } from '../../src/storage/rocksdb/private-umask.js';
import type { DeliveryItem, Sink } from '../../src/plugins/types.js';
import { tempDirs } from '../helpers/temp.js';
import { deliveryItems } from './fixtures.js';

const tempDir = tempDirs('edbx-modes-');
const sinks: Sink[] = [];
afterEach(async () => {
  await Promise.all(sinks.splice(0).map((s) => s.close()));
});
const keep = <S extends Sink>(s: S): S => (sinks.push(s), s);
const mode = async (p: string) => (await stat(p)).mode & 0o777;

/** An item whose state brings a new field (the CSV header is widened: the file is rewritten). */
function withNewField(position: number): DeliveryItem {
  const [item] = deliveryItems(1, position);
  return { ...item!, row: { ...item!.row!, state: { ...item!.row!.state, extra: 'x' } } };
}

describe('sink output modes (qa2-ops #9)', () => {
  it('new output files are 0600 and new directories 0700', async () => {
    const root = await tempDir();
    const csvDir = path.join(root, 'a', 'csv');
    const json = path.join(root, 'b', 'out', 'events.jsonl');
    const db = path.join(root, 'c', 'mirror.db');
    await keep(new CsvSink({ output_dir: csvDir })).deliver([...deliveryItems(2, 1), withNewField(3)]);
    await keep(new JsonSink({ path: json, pretty: false })).deliver(deliveryItems(2, 1));
    await keep(new SqliteSink({ path: db }, () => parseDataType('text'))).deliver(deliveryItems(2, 1));

    for (const d of [
      path.join(root, 'a'),
      csvDir,
      path.join(root, 'b'),
      path.dirname(json),
      path.join(root, 'c'),
    ])
      expect(await mode(d), d).toBe(0o700);
    expect(await mode(path.join(csvDir, 'patient.csv'))).toBe(0o600);
    expect(await mode(json)).toBe(0o600);
    const dbFiles = (await readdir(path.dirname(db))).filter((f) => f.startsWith('mirror.db'));
    expect(dbFiles).toContain('mirror.db');
    for (const f of dbFiles) expect(await mode(path.join(path.dirname(db), f)), f).toBe(0o600);
  });

  /** Outputs that exist keep their modes: a 0755 CSV dir, its file (widened too) and a JSON file. */
  async function expectModesKept(root: string, fileMode: number): Promise<void> {
    const csvDir = path.join(root, 'csv');
    await mkdir(csvDir);
    await chmod(csvDir, 0o755);
    const csv = keep(new CsvSink({ output_dir: csvDir }));
    await csv.deliver(deliveryItems(1, 1));
    await chmod(path.join(csvDir, 'patient.csv'), fileMode);
    await csv.deliver([withNewField(2)]);
    expect(await mode(csvDir)).toBe(0o755);
    expect(await mode(path.join(csvDir, 'patient.csv'))).toBe(fileMode);

    const json = path.join(root, 'events.jsonl');
    await writeFile(json, '');
    await chmod(json, fileMode);
    await keep(new JsonSink({ path: json, pretty: false })).deliver(deliveryItems(1, 1));
    expect(await mode(json)).toBe(fileMode);
  }

  it('files and directories that exist keep their modes, a widened CSV file too', async () => {
    await expectModesKept(await tempDir(), 0o640);
  });

  it("keep those modes under the umask of a server's open store (qa-aud #5)", async () => {
    // A server holds an owner-only umask while its store is open: the outputs a user points at must
    // not change for it, a file others may read (made so on purpose) included.
    const release = holdPrivateUmask();
    try {
      const root = await tempDir();
      await expectModesKept(root, 0o644);

      // SQLite gives its -wal and -shm files the database's mode, whatever the umask.
      const db = path.join(root, 'shared', 'mirror.db');
      await mkdir(path.dirname(db));
      await writeFile(db, '');
      await chmod(db, 0o644);
      await keep(new SqliteSink({ path: db }, () => parseDataType('text'))).deliver(deliveryItems(2, 1));
      const dbFiles = (await readdir(path.dirname(db))).filter((f) => f.startsWith('mirror.db'));
      expect(dbFiles.sort()).toEqual(['mirror.db', 'mirror.db-shm', 'mirror.db-wal']);
      for (const f of dbFiles) expect(await mode(path.join(path.dirname(db), f)), f).toBe(0o644);

      // New ones are as documented: files 0600, directories 0700.
      const fresh = path.join(root, 'new', 'events.jsonl');
      await keep(new JsonSink({ pretty: false, path: fresh })).deliver(deliveryItems(1, 1));
      expect(await mode(path.dirname(fresh))).toBe(0o700);
      expect(await mode(fresh)).toBe(0o600);
    } finally {
      release();
    }
  });
});
