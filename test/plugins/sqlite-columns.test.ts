/**
 * The SQLite writer's columns: fields that differ only in case (one column to SQLite) get distinct
 * columns, within one row too, and a row over SQLite's 2000 columns is refused before any is added
 * (each ADD COLUMN rewrites the schema: 2000 of them cost seconds before SQLite refused the last).
 */
import Database from 'better-sqlite3';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseDataType } from '../../src/plugins/sql/datatypes.js';
import type { SqlRow } from '../../src/plugins/sql/rows.js';
import { SqliteWriter } from '../../src/plugins/sqlite/writer.js';
import { tempDirs } from '../helpers/temp.js';

const tempDir = tempDirs('edbx-sqlite-cols-');
const writers: SqliteWriter[] = [];
afterEach(() => writers.splice(0).forEach((w) => w.close()));

const text = parseDataType('text');
const row = (id: string, fields: Record<string, string>): SqlRow => ({
  table: 'patient',
  id,
  version: 1,
  created_at: '2026-11-26T12:00:00.000Z',
  created_by: 'doctors/ana',
  updated_at: '2026-11-26T12:00:00.000Z',
  updated_by: 'doctors/ana',
  fields: Object.entries(fields).map(([field, value]) => ({ field, column: field, type: text, value })),
});

function columns(file: string): string[] {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare('PRAGMA table_info(patient)').all() as Array<{ name: string }>).map((c) => c.name);
  } finally {
    db.close();
  }
}

describe('SQLite writer columns', () => {
  it('gives fields differing only in case distinct columns, in one row as across rows', async () => {
    const file = path.join(await tempDir(), 'm.db');
    const w = new SqliteWriter(file);
    writers.push(w);
    w.write([row('p-1', { Ward: 'a', ward: 'b' }), row('p-2', { WARD: 'c' })]);
    const cols = columns(file).filter((c) => c.toLowerCase().startsWith('ward'));
    expect(cols).toHaveLength(3);
    expect(cols[0]).toBe('Ward');
    const db = new Database(file, { readonly: true });
    const [p1] = db.prepare('SELECT * FROM patient WHERE id = ?').all('p-1') as Array<
      Record<string, unknown>
    >;
    db.close();
    expect(Object.values(p1!).filter((v) => v === 'a' || v === 'b')).toEqual(['a', 'b']);
  });

  it('refuses a row over 2000 columns at once, adding none of them', async () => {
    const file = path.join(await tempDir(), 'm.db');
    const w = new SqliteWriter(file);
    writers.push(w);
    w.write([row('p-1', { name: 'x' })]);
    const wide = Object.fromEntries(Array.from({ length: 1995 }, (_, i) => [`f${i}`, '1']));
    let error: unknown;
    try {
      w.write([row('p-2', wide)]);
    } catch (e) {
      error = e;
    }
    // Refused before the first ADD COLUMN, saying how many the row needs (SQLite's own refusal, after
    // 1,993 of them, said "too many columns on sqlite_altertab_patient").
    expect((error as { code?: string }).code).toBe('SQLITE_ERROR');
    expect((error as Error).message).toBe('too many columns on patient: 2002 (SQLite allows 2000)');
    expect(columns(file)).toHaveLength(7);
    // Two fields fewer fit: 6 fixed columns, name, 1,993 fields.
    delete wide.f1994;
    delete wide.f1993;
    w.write([row('p-2', wide)]);
    expect(columns(file)).toHaveLength(2000);
  });
});
