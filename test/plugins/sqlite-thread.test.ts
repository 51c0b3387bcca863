/**
 * The SQLite sink writes on a thread of its own: better-sqlite3 is synchronous, and a batch of 500
 * upserts plus the commit's fsync would otherwise stall the server's event loop for milliseconds.
 */
import Database from 'better-sqlite3';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDataType } from '../../src/plugins/sql/datatypes.js';
import { SqliteSink } from '../../src/plugins/sqlite/sink.js';
import { tempDirs } from '../helpers/temp.js';
import { deliveryItems } from './fixtures.js';

const tempDir = tempDirs('edbx-sqlite-thread-');

const items = deliveryItems;

async function sinkIn(): Promise<{ sink: SqliteSink; file: string }> {
  const dir = await tempDir();
  const file = path.join(dir, 'mirror.db');
  return { sink: new SqliteSink({ path: file }, () => parseDataType('text')), file };
}

describe('SQLite sink thread', () => {
  it('keeps the event loop turning while a batch is written, and everything is there after close', async () => {
    const { sink, file } = await sinkIn();
    await sink.deliver(items(1)); // the thread is up
    let turns = 0;
    let turning = true;
    const spin = () => {
      turns++;
      if (turning) setImmediate(spin);
    };
    setImmediate(spin);
    await sink.deliver(items(500, 2));
    turning = false;
    expect(turns).toBeGreaterThan(0);
    await sink.close();
    const db = new Database(file, { readonly: true });
    try {
      expect(db.prepare('SELECT count(*) AS n FROM patient').get()).toEqual({ n: 501 });
      expect(db.prepare("SELECT name, ward FROM patient WHERE id = 'p-77'").get()).toEqual({
        name: 'patient 77',
        ward: String(77 % 9),
      });
    } finally {
      db.close();
    }
  });

  it('reports a locked file as a transient failure, and delivers once it is free', async () => {
    const { sink, file } = await sinkIn();
    await sink.deliver(items(1));
    const other = new Database(file);
    other.exec('BEGIN EXCLUSIVE');
    await expect(sink.deliver(items(1, 2))).rejects.toMatchObject({
      permanent: false,
      message: expect.stringMatching(/SQLITE_BUSY/),
    });
    other.exec('COMMIT');
    other.close();
    await sink.deliver(items(1, 2));
    await sink.close();
  });
});
