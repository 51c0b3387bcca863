/**
 * Names that look alike are one name, and refusals that say what to fix (qa-schema #1, #4-#8,
 * qa-spec #4), on a real RocksDB data dir: a field name or a new aggregate id not in Unicode NFC is
 * refused, never normalised; JSON lists of names are taken as sent; a declared field holds no comma;
 * the permitted fields a refusal lists leave out locked ones; a threshold of 0 is recorded as no
 * automatic snapshots; range messages give the upper bound, and a NUL in a value is named as such.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { normalizePayload } from '../src/core/event.js';
import { fieldName, version } from '../src/core/names.js';
import { parseNames, parseThreshold } from '../src/core/schema.js';
import { parseScope } from '../src/core/tokens.js';
import { RocksDbEngine } from '../src/storage/rocksdb/rocksdb-engine.js';
import { EventStore } from '../src/store/index.js';
import { alterSchema, createSchema, installSchemas } from '../src/store/schemas.js';
import { expectCode } from './helpers/expect.js';
import { tempDirs } from './helpers/temp.js';

const jane = { issuedBy: { group: 'admin', user: 'jane' } };
const MAX = '9007199254740991';

/** The same words, precomposed (NFC) and not: decomposed accents, a compatibility sign, Hangul jamo. */
const SPELLINGS: Array<[nfc: string, other: string, says: string]> = [
  ['diagnóstico', 'diagno\u0301stico', 'U+006F U+0301 is U+00F3 in NFC'],
  ['résultat', 're\u0301sultat', 'U+0065 U+0301 is U+00E9 in NFC'],
  ['\u00c5ngstr\u00f6m', '\u212bngstr\u00f6m', 'U+212B is U+00C5 in NFC'],
  ['\uac00', '\u1100\u1161', 'U+1100 U+1161 is U+AC00 in NFC'],
];

describe('names not in Unicode NFC (qa-schema #1)', () => {
  it('a field name not in NFC is refused naming it and saying to send it in NFC; its NFC spelling is taken', async () => {
    for (const [nfc, other, says] of SPELLINGS) {
      expect(fieldName(nfc)).toBe(nfc);
      const e = await expectCode(() => fieldName(other), 'EDBX_ERR_INVALID_FIELD_NAME');
      expect(e.message).toBe(
        `invalid field name ${JSON.stringify(other)}: it is not in Unicode NFC (${says}), so it would be another name that looks the same as its NFC spelling: send the name in NFC`,
      );
      // Payload keys, schema fields (declared and locked) follow the one rule.
      await expectCode(() => normalizePayload({ [other]: 'x' }), 'EDBX_ERR_INVALID_FIELD_NAME');
      await expectCode(() => parseNames([other], 'field'), 'EDBX_ERR_INVALID_FIELD_NAME');
    }
  });

  it('a token scope whose id is not in NFC is refused, saying to send it in NFC', async () => {
    expect(parseScope('patient/josé')).toBe('patient/josé');
    const e = await expectCode(() => parseScope('patient/jose\u0301'), 'EDBX_ERR_INVALID_ARGUMENT');
    expect(e.message).toMatch(/^invalid aggregate scope .*: the id "jose\u0301": it is not in Unicode NFC/);
    expect(e.message).toMatch(/send the id in NFC$/);
  });
});

describe('on a RocksDB store', () => {
  let dir: string;
  let store: EventStore;
  const tempDir = tempDirs('edbx-nfc-');
  beforeEach(async () => {
    dir = await tempDir();
    store = await EventStore.open({ engine: new RocksDbEngine(dir) });
    await installSchemas(store, 'true');
  });
  afterEach(async () => {
    await store.close();
  });

  it('a locked field cannot be written under its decomposed spelling, nor one field stored twice (qa-schema #1)', async () => {
    await createSchema(store, { aggregate: 'patient', events: 'patient-added' }, jane);
    await alterSchema(store, 'patient', { field: 'diagnóstico', lock: true }, jane);
    const add = (payload: Record<string, string>, id = 'p-3') =>
      store.append(
        { aggregate_type: 'patient', aggregate_id: id, event_type: 'patient-added', payload },
        jane,
      );
    await expectCode(add({ diagnóstico: 'HIV+' }), 'EDBX_ERR_FIELD_LOCKED');
    await expectCode(add({ 'diagno\u0301stico': 'HIV+' }), 'EDBX_ERR_INVALID_FIELD_NAME');
    await expectCode(store.aggregate('patient', 'p-3'), 'EDBX_ERR_AGGREGATE_NOT_FOUND');
    // Two fields that print the same in one state (`é` both ways) cannot come about.
    await add({ é: 'precomposed' }, 'l-2');
    await expectCode(add({ 'e\u0301': 'combining' }, 'l-2'), 'EDBX_ERR_INVALID_FIELD_NAME');
    expect((await store.aggregate('patient', 'l-2')).state).toEqual({ é: 'precomposed' });
  });

  it('a new aggregate id not in NFC is refused; its NFC spelling is taken (qa-schema #1)', async () => {
    const add = (id: string) =>
      store.append({ aggregate_type: 'lab', aggregate_id: id, event_type: 'added', payload: {} }, jane);
    const e = await expectCode(add('jose\u0301'), 'EDBX_ERR_INVALID_AGGREGATE_ID');
    expect(e.message).toMatch(
      /^invalid aggregate id "jose\u0301": it is not in Unicode NFC \(U\+0065 U\+0301/,
    );
    await expectCode(store.aggregate('lab', 'jose\u0301'), 'EDBX_ERR_AGGREGATE_NOT_FOUND');
    expect((await add('josé')).version).toBe(1);
    expect((await add('josé')).version).toBe(2);
  });

  it('a refused field lists as permitted only the declared fields that are not locked (qa-schema #4)', async () => {
    await createSchema(store, { aggregate: 'patient', events: 'patient-added' }, jane);
    await alterSchema(store, 'patient', { event: 'patient-added', add: 'name,status,dob,ssn,mrn' }, jane);
    await alterSchema(store, 'patient', { field: 'ssn', lock: true }, jane);
    const e = await expectCode(
      store.append(
        {
          aggregate_type: 'patient',
          aggregate_id: 'p-002',
          event_type: 'patient-added',
          payload: { name: 'Bob', nickname: 'B' },
        },
        jane,
      ),
      'EDBX_ERR_FIELD_NOT_PERMITTED',
    );
    expect(e.message).toBe(
      'event "patient-added" of aggregate "patient" may not set field "nickname": permitted fields are dob, mrn, name, status',
    );
  });

  it('a schema created with threshold 0 records "no automatic snapshots", not "every 0 events" (qa-schema #7)', async () => {
    const { schema } = await createSchema(
      store,
      { aggregate: 'x3', events: 'a', snapshotThreshold: 0 },
      jane,
    );
    expect(schema.change).toBe('created with events a; no automatic snapshots');
    const entry = (await store.auditLog()).find((e) => e.event_type === 'schema-created');
    expect(entry?.payload.change).toBe('created with events a; no automatic snapshots');
    const every = await createSchema(store, { aggregate: 'x4', events: 'a', snapshotThreshold: 5 }, jane);
    expect(every.schema.change).toBe('created with events a; snapshot every 5 events');
  });
});

describe('lists of names (qa-schema #5, #6)', () => {
  it('a JSON list is taken as sent: an item with spaces at either end is refused, not trimmed', async () => {
    const field = await expectCode(() => parseNames(['a b '], 'field'), 'EDBX_ERR_INVALID_FIELD_NAME');
    expect(field.message).toMatch(/"a b ": it starts or ends with a space: remove the spaces/);
    await expectCode(() => parseNames([' scan-done '], 'event'), 'EDBX_ERR_INVALID_EVENT_TYPE');
    // The CLI's comma-separated lists are split, and their items trimmed: `--add 'name, dob'`.
    expect(parseNames('name, dob ,x', 'field')).toEqual(['name', 'dob', 'x']);
    expect(parseNames('patient-added, patient-updated', 'event')).toEqual([
      'patient-added',
      'patient-updated',
    ]);
  });

  it('a field to declare cannot hold a comma (no CLI list could name it); one the event holds can be removed', async () => {
    const e = await expectCode(() => parseNames(['p,q'], 'field'), 'EDBX_ERR_INVALID_FIELD_NAME');
    expect(e.message).toBe(
      'invalid field name "p,q": a field a schema declares cannot hold a comma: the command line\'s lists of fields are comma-separated, so no command could name it; rename the field',
    );
    expect(parseNames(['p,q'], 'field', new Set(['p,q']))).toEqual(['p,q']);
    // Payload keys may still hold one (`--field 'p,q=1'` splits at '=' only).
    expect(normalizePayload({ 'p,q': '1' })).toEqual({ 'p,q': '1' });
  });
});

describe('refusals that say what to fix (qa-schema #8, qa-spec #4)', () => {
  it('a snapshot threshold or version out of range is refused quoting it and giving the upper bound', async () => {
    for (const v of ['9007199254740992', '18446744073709551615']) {
      const t = await expectCode(() => parseThreshold(v), 'EDBX_ERR_INVALID_SNAPSHOT_THRESHOLD');
      expect(t.message).toBe(
        `invalid snapshot threshold "${v}": use a whole number of events from 0 to ${MAX} (0 = no automatic snapshots)`,
      );
      const n = await expectCode(() => version(v), 'EDBX_ERR_INVALID_VERSION');
      expect(n.message).toBe(`invalid version "${v}": use a whole number from 1 to ${MAX}`);
    }
    expect(parseThreshold(MAX)).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('a value holding a NUL says so and to remove it; a lone surrogate says to send well-formed text', async () => {
    const nul = await expectCode(
      () => normalizePayload({ note: 'a\u0000b' }),
      'EDBX_ERR_INVALID_FIELD_VALUE',
    );
    expect(nul.message).toBe(
      'field "note" holds a NUL character (U+0000): remove it (payload values are text without NUL)',
    );
    const half = await expectCode(
      () => normalizePayload({ note: 'a\ud800' }),
      'EDBX_ERR_INVALID_FIELD_VALUE',
    );
    expect(half.message).toMatch(/^field "note" holds a lone surrogate .*: send the value as well-formed/);
  });
});
