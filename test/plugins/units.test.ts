/** The pure parts of the plugins: datatypes and casts, CSV, masking, backoff, names, settings, file repair. */
import fc from 'fast-check';
import { createReadStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isEventDbxError } from '../../src/core/errors.js';
import { backoffDelay } from '../../src/plugins/backoff.js';
import { MAX_IDENT_BYTES, fieldColumn, fitIdent } from '../../src/plugins/columns.js';
import { formatRecord, padRecords, parseCsv, walkCsv } from '../../src/plugins/csv/rfc4180.js';
import { CsvSink } from '../../src/plugins/csv/sink.js';
import { repairTail } from '../../src/plugins/files.js';
import { DEFAULT_TEMPLATE, renderTemplate } from '../../src/plugins/log/sink.js';
import {
  buildDelivery,
  buildSettings,
  describeTarget,
  maskSecrets,
  maskedSettings,
} from '../../src/plugins/settings.js';
import { DEFAULT_DELIVERY } from '../../src/plugins/types.js';
import { castValue, parseDataType, postgresType, sqliteType } from '../../src/plugins/sql/datatypes.js';
import { typeResolver } from '../../src/plugins/sql/rows.js';
import { tableName } from '../../src/plugins/sql/names.js';
import type { Mappings } from '../../src/plugins/types.js';
import type { EventRecord } from '../../src/core/event.js';
import { tempDirs } from '../helpers/temp.js';

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (isEventDbxError(e)) return e.code;
    throw e;
  }
  throw new Error('expected an error');
}

const record = (over: Partial<EventRecord> = {}): EventRecord => ({
  aggregate_type: 'patient',
  aggregate_id: 'p-001',
  event_type: 'patient-updated',
  payload: { status: 'inactive' },
  metadata: {
    event_id: 'e-1',
    created_at: '2024-12-01T17:22:43.512Z',
    issued_by: { group: 'admin', user: 'jane' },
  },
  version: 5,
  position: 9,
  hash: 'cafe',
  merkle_root: 'beef',
  ...over,
});

const tempDir = tempDirs('edbx-units-');

describe('plugin map datatypes', () => {
  it('accepts the documented types and common aliases, case-insensitively', () => {
    const names = [
      'TEXT',
      'int',
      'int4',
      'Integer',
      'bigint',
      'double precision',
      'float',
      'decimal(10, 2)',
      'bool',
      'jsonb',
      'timestamptz',
      'datetime',
      'varchar(32)',
      'uuid',
      'time',
      'date',
      'smallint',
    ];
    expect(names.map((n) => parseDataType(n).name)).toEqual([
      'text',
      'integer',
      'integer',
      'integer',
      'bigint',
      'real',
      'real',
      'numeric(10,2)',
      'boolean',
      'json',
      'timestamp',
      'timestamp',
      'varchar(32)',
      'uuid',
      'time',
      'date',
      'smallint',
    ]);
    expect(postgresType(parseDataType('real'))).toBe('DOUBLE PRECISION');
    expect(postgresType(parseDataType('json'))).toBe('JSONB');
    expect(sqliteType(parseDataType('boolean'))).toBe('INTEGER');
  });

  it('refuses unknown or malformed types (nothing reaches the DDL unchecked)', () => {
    for (const bad of [
      'money',
      'integer(4)',
      'varchar',
      'varchar(0)',
      'numeric(3,4)',
      'text; DROP TABLE x',
      '"text"',
      '',
    ])
      expect(code(() => parseDataType(bad))).toBe('EDBX_ERR_PLUGIN_DATATYPE_INVALID');
  });

  it.each([
    ['integer', '42', 42],
    ['integer', ' -7 ', -7],
    ['integer', '2147483648', undefined],
    ['integer', '4.2', undefined],
    ['smallint', '40000', undefined],
    ['bigint', '9223372036854775807', '9223372036854775807'],
    ['bigint', '9223372036854775808', undefined],
    ['real', '1.5e3', 1500],
    ['real', 'NaN', undefined],
    ['numeric(5,2)', '123.456', '123.456'],
    ['numeric(5,2)', '1234.5', undefined],
    ['boolean', 'Yes', true],
    ['boolean', '0', false],
    ['boolean', 'maybe', undefined],
    ['date', '2024-02-29', '2024-02-29'],
    ['date', '2023-02-29', undefined],
    ['date', '0099-12-31', '0099-12-31'],
    ['date', '0001-01-01', '0001-01-01'],
    ['date', '0000-01-01', undefined],
    ['timestamp', '0099-12-31T23:59:59Z', '0099-12-31T23:59:59.000000Z'],
    ['timestamp', '2024-12-01T17:22:43.123456Z', '2024-12-01T17:22:43.123456Z'],
    ['timestamp', '2024-12-01T17:22:43.123456789-05:00', '2024-12-01T22:22:43.123457Z'],
    ['timestamp', '2024-12-31T23:59:59.9999996Z', '2025-01-01T00:00:00.000000Z'],
    ['timestamp', '9999-12-31T23:59:59.9999999Z', undefined],
    ['timestamp', '0001-01-01T00:30:00+01:00', undefined],
    ['timestamp', '2024-12-01 17:22:43.5', '2024-12-01T17:22:43.500000Z'],
    ['timestamp', '2024-12-01T17:22:43.1234Z', '2024-12-01T17:22:43.123400Z'],
    ['timestamp', '2024-12-01T17:22.5Z', undefined],
    ['timestamp', '2024-12-01T17:22:43Z', '2024-12-01T17:22:43.000000Z'],
    ['timestamp', '2024-12-01 17:22', '2024-12-01T17:22:00.000000Z'],
    ['timestamp', '2024-12-01T17:22:43+0530', '2024-12-01T11:52:43.000000Z'],
    ['timestamp', 'yesterday', undefined],
    ['time', '23:59:59.5', '23:59:59.5'],
    ['time', '24:00', undefined],
    ['json', '{"a":1}', '{"a":1}'],
    ['json', '{a:1}', undefined],
    ['uuid', '45C3013E-9B95-4ED0-9AF9-1A465F81D3CF', '45c3013e-9b95-4ed0-9af9-1a465f81d3cf'],
    ['varchar(3)', 'abcd', undefined],
    ['varchar(3)', 'äöü', 'äöü'],
    ['integer', '', null],
    ['text', '', ''],
  ])('casts %s %j', (type, raw, want) => {
    const r = castValue(parseDataType(type), raw);
    if (want === undefined) expect(r.ok).toBe(false);
    else expect(r).toEqual({ ok: true, value: want });
  });

  it('casts every whole number in range to itself (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), (n) => {
        expect(castValue(parseDataType('integer'), String(n))).toEqual({ ok: true, value: n });
      }),
    );
  });
});

describe('column type lookup', () => {
  it('maps names that are also Object properties (constructor, toString, __proto__) like any other: TEXT unless mapped', () => {
    const typeOf = typeResolver(
      { base: { constructor: { toString: 'integer' } }, postgres: {}, sqlite: {} } as unknown as Mappings,
      'sqlite',
    );
    for (const [type, field] of [
      ['patient', 'constructor'],
      ['constructor', 'name'],
      ['patient', '__proto__'],
      ['hasOwnProperty', 'valueOf'],
    ])
      expect(typeOf(type!, field!)).toEqual(parseDataType('text'));
    expect(typeOf('constructor', 'toString')).toEqual(parseDataType('integer'));
  });
});

describe('RFC 4180 CSV', () => {
  it('reads back any records it writes, whatever the text (property)', () => {
    const field = fc.string({ unit: fc.constantFrom('a', 'é', '漢', ',', '"', '\r', '\n', ' ', 'x') });
    fc.assert(
      fc.property(fc.array(fc.array(field, { minLength: 1, maxLength: 5 }), { maxLength: 6 }), (records) => {
        const text = records.map(formatRecord).join('');
        const parsed = parseCsv(text);
        expect(parsed.records).toEqual(records);
        expect(parsed.end).toBe(text.length);
      }),
    );
  });

  it('walks a file in chunks as it reads it whole, torn last record included (property)', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'x.csv');
    const field = fc.string({ unit: fc.constantFrom('a', 'é', '漢', ',', '"', '\r', '\n', ' ') });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(field, { minLength: 1, maxLength: 4 }), { maxLength: 6 }),
        fc.constantFrom('', 'torn,"half', '1,2\r'),
        fc.integer({ min: 1, max: 16 }),
        fc.integer({ min: 0, max: 3 }),
        async (records, tail, chunkBytes, lead) => {
          const text = records.map(formatRecord).join('') + tail;
          await writeFile(file, text);
          const all: string[][] = [];
          const leading: Array<Array<string | undefined>> = [];
          let end = 0;
          const chunks = createReadStream(file, { highWaterMark: chunkBytes }) as AsyncIterable<Buffer>;
          for await (const chunk of walkCsv(chunks, lead)) {
            for (const r of chunk.records) {
              all.push(r.all());
              leading.push(Array.from({ length: lead }, (_, k) => r.field(k)));
            }
            end = chunk.end;
          }
          const whole = parseCsv(text);
          expect(all).toEqual(whole.records);
          expect(leading).toEqual(whole.records.map((r) => Array.from({ length: lead }, (_, k) => r[k])));
          expect(end).toBe(Buffer.byteLength(text.slice(0, whole.end)));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('pads every record below the header to a width, copying its bytes, in any chunking (property)', async () => {
    const field = fc.string({ unit: fc.constantFrom('a', 'é', '漢', ',', '"', '\r', '\n', ' ') });
    const chunked = async function* (bytes: Buffer, sizes: number[]) {
      for (let at = 0, k = 0; at < bytes.length; k++) {
        const n = sizes[k % sizes.length]!;
        yield bytes.subarray(at, at + n);
        at += n;
      }
    };
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(field, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }),
        fc.constantFrom('', 'torn,"half', '1,2\r'),
        fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 7 }),
        async (records, lf, tail, sizes, width) => {
          // CRLF as the sink writes, or LF as an editor might have: each keeps its terminator.
          const lines = records.map((r, i) => {
            const line = formatRecord(r);
            return lf[i] ? line.slice(0, -2) + '\n' : line;
          });
          const bytes = Buffer.from(lines.join('') + tail);
          const parts: Buffer[] = [];
          for await (const b of padRecords(chunked(bytes, sizes), width)) parts.push(b);
          const want = records.slice(1).map((r, i) => {
            const line = formatRecord([...r, ...Array<string>(Math.max(0, width - r.length)).fill('')]);
            return lf[i + 1] ? line.slice(0, -2) + '\n' : line;
          });
          expect(Buffer.concat(parts).toString()).toBe(want.join(''));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('quotes only what needs quoting and ends records with CRLF', () => {
    expect(formatRecord(['a', 'b,c', 'say "hi"', 'two\nlines', ' x'])).toBe(
      'a,"b,c","say ""hi""","two\nlines"," x"\r\n',
    );
  });

  it('reports where the last complete record ends when the text is cut mid-record', () => {
    const text = formatRecord(['id', 'note']) + formatRecord(['1', 'multi\r\nline']) + '2,"torn\r\n';
    const parsed = parseCsv(text);
    expect(parsed.records).toEqual([
      ['id', 'note'],
      ['1', 'multi\r\nline'],
    ]);
    expect(text.slice(parsed.end)).toBe('2,"torn\r\n');
  });
});

describe('masking secrets', () => {
  it('hides passwords in connection URLs, key=value strings and query parameters', () => {
    expect(maskSecrets('postgres://bob:hunter2@db:5432/app')).toBe('postgres://bob:***@db:5432/app');
    expect(maskSecrets("host=db user=bob password='a b' dbname=app")).toBe(
      'host=db user=bob password=*** dbname=app',
    );
    expect(maskSecrets('postgres://db/app?user=bob&password=s3cr3t&sslmode=require')).toBe(
      'postgres://db/app?user=bob&password=***&sslmode=require',
    );
    expect(maskSecrets('postgres://db/app')).toBe('postgres://db/app');
  });

  it('hides every query parameter value and the password of an HTTP endpoint (QA item 6)', () => {
    const config = {
      name: 'http',
      kind: 'http',
      enabled: true,
      settings: { endpoint: 'https://u:pw1@hooks.example.com/in?token=tok1&team=ops#frag', headers: {} },
      delivery: DEFAULT_DELIVERY,
      created_at: '',
      updated_at: '',
    } as const;
    const shown = [describeTarget(config), JSON.stringify(maskedSettings(config))];
    for (const text of shown) {
      expect(text).not.toMatch(/pw1|tok1|ops/);
      expect(text).toContain('https://u:***@hooks.example.com/in?token=***&team=***');
    }
    expect(maskSecrets('http://x/?a=secret')).toBe('http://x/?a=***');
    expect(maskSecrets('not a url secret')).toBe('***');
  });
});

describe('retry backoff', () => {
  it('grows exponentially with jitter between half and all of the step, capped at the maximum (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, r) => {
          const o = { backoff_ms: 100, backoff_max_ms: 30_000 };
          const step = Math.min(o.backoff_max_ms, 100 * 2 ** (attempt - 1));
          const d = backoffDelay(attempt, o, () => r);
          expect(d).toBeGreaterThanOrEqual(Math.floor(step / 2));
          expect(d).toBeLessThanOrEqual(step);
        },
      ),
    );
  });
});

describe('column names', () => {
  it('fit PostgreSQL identifiers and stay distinct when long names share a prefix', () => {
    const a = fitIdent('x'.repeat(70) + 'a');
    const b = fitIdent('x'.repeat(70) + 'b');
    expect(Buffer.byteLength(a)).toBeLessThanOrEqual(MAX_IDENT_BYTES);
    expect(a).not.toBe(b);
    expect(fitIdent('漢'.repeat(30)).length).toBeLessThan(30);
    expect(fieldColumn('Version', new Set(['version']))).toBe('field_Version');
    expect(fieldColumn('status', new Set(['version']))).toBe('status');
  });

  it('give a field literally named field_id a column of its own, apart from the field id (read-model QA 2)', () => {
    const reserved = new Set(['id', 'version']);
    expect(fieldColumn('id', reserved)).toBe('field_id');
    expect(fieldColumn('field_id', reserved)).toBe('field_field_id');
    expect(fieldColumn('Field_FIELD_version', reserved)).toBe('field_Field_FIELD_version');
    // Names that merely start with field_ keep their column.
    expect(fieldColumn('field_0', reserved)).toBe('field_0');
    expect(fieldColumn('field_', reserved)).toBe('field_');
    // No two names share a column: made of the pieces that could meet.
    const piece = fc.constantFrom('field_', 'Field_', 'FIELD_', 'id', 'ID', 'version', 'x', '_');
    fc.assert(
      fc.property(
        fc.array(piece, { minLength: 1, maxLength: 6 }),
        fc.array(piece, { minLength: 1, maxLength: 6 }),
        (a, b) => {
          const [x, y] = [a.join(''), b.join('')];
          if (x !== y) expect(fieldColumn(x, reserved)).not.toBe(fieldColumn(y, reserved));
        },
      ),
    );
  });
});

describe('table names', () => {
  it('map aggregate types named like the bookkeeping tables or a name SQLite reserves (read-model QA 1)', () => {
    expect(tableName('patient', 'postgres')).toBe('patient');
    expect(tableName('eventdbx_sink_head', 'postgres')).toBe('aggregate$eventdbx_sink_head');
    expect(tableName('eventdbx_sink_tables', 'sqlite')).toBe('aggregate$eventdbx_sink_tables');
    expect(tableName('sqlite_sequence', 'sqlite')).toBe('aggregate$sqlite_sequence');
    // A name SQLite reserves is a table like any other in PostgreSQL (existing tables stay where they are).
    expect(tableName('sqlite_sequence', 'postgres')).toBe('sqlite_sequence');
    expect(tableName('pg_class', 'postgres')).toBe('pg_class');
    const long = `sqlite_${'x'.repeat(57)}`;
    expect(tableName(long, 'sqlite')).toMatch(/^aggregate\$sqlite_x+_[0-9a-f]{8}$/);
    expect(Buffer.byteLength(tableName(long, 'sqlite'))).toBeLessThanOrEqual(MAX_IDENT_BYTES);
  });
});

describe('plugin settings', () => {
  it('validates each kind and names the flag to fix', () => {
    expect(code(() => buildSettings('tcp', { host: 'h', port: '70000' }))).toBe(
      'EDBX_ERR_PLUGIN_CONFIG_INVALID',
    );
    expect(code(() => buildSettings('http', { endpoint: 'ftp://x' }))).toBe('EDBX_ERR_PLUGIN_CONFIG_INVALID');
    expect(code(() => buildSettings('http', { endpoint: 'http://x', headers: ['Bad Header=1'] }))).toBe(
      'EDBX_ERR_PLUGIN_CONFIG_INVALID',
    );
    expect(code(() => buildSettings('log', { level: 'loud' }))).toBe('EDBX_ERR_PLUGIN_CONFIG_INVALID');
    expect(code(() => buildSettings('postgres', { connection: 'not a dsn' }))).toBe(
      'EDBX_ERR_PLUGIN_CONFIG_INVALID',
    );
    expect(buildSettings('http', { endpoint: 'https://x/y', headers: ['A=b=c', 'X-K= v '] })).toEqual({
      endpoint: 'https://x/y',
      headers: { A: 'b=c', 'X-K': ' v ' },
    });
    expect(buildSettings('json', { path: 'rel/out.json' }).path).toBe(path.resolve('rel/out.json'));
    expect(code(() => buildDelivery('http', { on_failure: 'explode' }))).toBe(
      'EDBX_ERR_PLUGIN_CONFIG_INVALID',
    );
    expect(buildDelivery('http', { max_attempts: '3', on_failure: 'block' })).toMatchObject({
      max_attempts: 3,
      on_failure: 'block',
    });
  });

  it('renders the log template, with the spec default', () => {
    expect(renderTemplate(DEFAULT_TEMPLATE, record())).toBe(
      'aggregate=patient id=p-001 event=patient-updated',
    );
    expect(renderTemplate('{event} on {aggregate}/{id} v{version} #{position} {unknown}', record())).toBe(
      'patient-updated on patient/p-001 v5 #9 {unknown}',
    );
  });
});

describe('file repair after a crash mid-write', () => {
  it('cuts a torn JSON Lines or pretty record back to the last complete one', async () => {
    const dir = await tempDir();
    const lines = path.join(dir, 'a.jsonl');
    await writeFile(lines, '{"a":1}\n{"a":2}\n{"a":');
    await repairTail(lines, '\n');
    expect(await readFile(lines, 'utf8')).toBe('{"a":1}\n{"a":2}\n');
    const pretty = path.join(dir, 'b.json');
    const doc = JSON.stringify({ a: { b: 1 } }, null, 2) + '\n';
    await writeFile(pretty, doc + doc.slice(0, 12));
    await repairTail(pretty, '\n}\n');
    expect(await readFile(pretty, 'utf8')).toBe(doc);
    await writeFile(lines, 'no newline at all');
    await repairTail(lines, '\n');
    expect(await readFile(lines, 'utf8')).toBe('');
  });

  it('CSV: drops a torn row, then appends after a complete one, widening the header for a new field', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'patient.csv');
    const header = [
      'id',
      'version',
      'event',
      'event_id',
      'created_at',
      'created_by',
      'updated_at',
      'updated_by',
      'status',
    ];
    const good = ['p-1', '1', 'patient-added', 'e-0', 't0', 'admin/jane', 't0', 'admin/jane', 'active'];
    await writeFile(file, formatRecord(header) + formatRecord(good) + 'p-1,2,"patient-upd');
    const sink = new CsvSink({ output_dir: dir });
    const row = {
      state: { status: 'inactive', comment: 'a, "b"' },
      created_at: 't0',
      created_by: { group: 'admin', user: 'jane' },
    };
    await sink.deliver([{ record: record({ aggregate_id: 'p-1', version: 2 }), row }]);
    await sink.close();
    const { records, end } = parseCsv(await readFile(file, 'utf8'));
    expect(end).toBe((await readFile(file, 'utf8')).length);
    expect(records).toEqual([
      [...header, 'comment'],
      [...good, ''],
      [
        'p-1',
        '2',
        'patient-updated',
        'e-1',
        't0',
        'admin/jane',
        '2024-12-01T17:22:43.512Z',
        'admin/jane',
        'inactive',
        'a, "b"',
      ],
    ]);
  });
});
