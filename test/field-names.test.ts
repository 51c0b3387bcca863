/**
 * The rule of field names and token scopes (pen #5), and what it leaves alone: names stored before it
 * (a schema's declared and locked fields, a token's scopes, on a real RocksDB data dir) stay readable,
 * and a schema can still drop or unlock them; only new writes follow the rule.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type EventDbxError, isEventDbxError } from '../src/core/errors.js';
import { fieldName } from '../src/core/names.js';
import { type Schema, alterSchema as alterBody } from '../src/core/schema.js';
import { type TokenRecord, hashToken, parseScope } from '../src/core/tokens.js';
import { RocksDbEngine } from '../src/storage/rocksdb/rocksdb-engine.js';
import { plainCodec, sealJson } from '../src/store/codec.js';
import { EventStore } from '../src/store/index.js';
import * as K from '../src/store/keys.js';
import { alterSchema, createSchema, getSchema } from '../src/store/schemas.js';
import { authenticate, createToken, listTokens } from '../src/store/tokens.js';
import { tempDirs } from './helpers/temp.js';

const jane = { issuedBy: { group: 'admin', user: 'jane' } };

const refusal = (f: () => unknown): EventDbxError => {
  try {
    f();
  } catch (e) {
    if (isEventDbxError(e)) return e;
    throw e;
  }
  throw new Error('not refused');
};

describe('fieldName (pen #5)', () => {
  it('refuses invisible characters, spaces at either end and controls, saying which and what to fix', () => {
    for (const [name, says] of [
      ['ssn\u200b', 'invisible character U+200B'], // zero-width space
      ['ss\u202en', 'invisible character U+202E'], // right-to-left override
      ['\u2066ssn', 'invisible character U+2066'], // left-to-right isolate
      ['ssn\ufeff', 'invisible character U+FEFF'], // byte order mark
      ['s\u00adsn', 'invisible character U+00AD'], // soft hyphen
      ['ssn\u3164', 'invisible character U+3164'], // Hangul filler
      ['ssn\ufe0f', 'invisible character U+FE0F'], // variation selector
      ['ssn\u{e0073}', 'invisible character U+E0073'], // tag letter
      ['ss\u00a0n', 'invisible character U+00A0'], // no-break space
      ['ss\u2028n', 'invisible character U+2028'], // line separator
      ['ssn ', 'starts or ends with a space'],
      [' ssn', 'starts or ends with a space'],
      ['ss\tn', 'control character U+0009'],
      ['ss\u0085n', 'control character U+0085'],
      ['ssn\ud800', 'lone surrogate'],
      ['', 'cannot be empty'],
      ['f'.repeat(129), 'longer than 128 characters'],
      ['__proto__', 'not allowed'],
    ]) {
      const e = refusal(() => fieldName(name!));
      expect(e.code, JSON.stringify(name)).toBe('EDBX_ERR_INVALID_FIELD_NAME');
      expect(e.message).toContain(says!);
      // Names the field (quoted, invisible characters escaped), says what is wrong and what to do.
      expect(e.message).toMatch(/^invalid field name ".*: .*: (remove|use|send|rename) /);
    }
  });

  it('takes visible names: inner spaces, punctuation, any script, emoji, 128 characters', () => {
    for (const name of [
      'ssn',
      'full name',
      'a/b.c',
      'prénom',
      'имя',
      '名前',
      '😀',
      'x'.repeat(128),
      '.',
      '__proto',
    ]) {
      expect(fieldName(name)).toBe(name);
    }
  });
});

describe('parseScope (pen #5)', () => {
  it('refuses a scope whose id no aggregate can have, and keeps the type rule', () => {
    for (const scope of ['patient/p-001 ', 'patient/\u200bp', 'patient/', 'patient/.', 'patient/a/b']) {
      const e = refusal(() => parseScope(scope));
      expect(e.code, JSON.stringify(scope)).toBe('EDBX_ERR_INVALID_ARGUMENT');
      expect(e.message).toMatch(
        /^invalid aggregate scope .*is not an aggregate id, so no aggregate could match it/,
      );
    }
    for (const scope of ['Patient', '/p-1', '', 'pat ient/p-1']) {
      expect(refusal(() => parseScope(scope)).message, scope).toMatch(/is not an aggregate type/);
    }
    for (const scope of ['patient', 'patient/p-001', 'patient/Jane Doe', 'patient/a,b']) {
      expect(parseScope(scope)).toBe(scope);
    }
  });
});

describe('names stored before the rule (pen #5)', () => {
  let dir: string;
  let store: EventStore;
  const reopen = async () => {
    await store.close();
    store = await EventStore.open({ engine: new RocksDbEngine(dir) });
  };
  const tempDir = tempDirs('edbx-legacy-names-');
  beforeEach(async () => {
    dir = await tempDir();
    store = await EventStore.open({ engine: new RocksDbEngine(dir) });
  });
  afterEach(async () => {
    await store.close();
  });

  it('a schema holding them stays readable, and can drop and unlock them, but not add them again', async () => {
    const { schema } = await createSchema(store, { aggregate: 'patient', events: 'patient-added' }, jane);
    const old: Schema = {
      ...schema,
      version: 2,
      events: { 'patient-added': { fields: ['name', 'ssn\u200b'] } },
      locked_fields: ['ss\u202en'],
    };
    await store.engine.write(
      [{ type: 'put', space: 'main', key: K.schemaKey('patient', 2), value: sealJson(plainCodec, old) }],
      { sync: true },
    );
    await reopen();
    expect(await getSchema(store, 'patient')).toMatchObject({
      version: 2,
      events: { 'patient-added': { fields: ['name', 'ssn\u200b'] } },
      locked_fields: ['ss\u202en'],
    });
    const dropped = await alterSchema(
      store,
      'patient',
      { event: 'patient-added', remove: 'ssn\u200b' },
      jane,
    );
    expect(dropped.schema.events['patient-added']!.fields).toEqual(['name']);
    const unlocked = await alterSchema(store, 'patient', { field: 'ss\u202en', lock: false }, jane);
    expect(unlocked.schema.locked_fields).toEqual([]);
    for (const req of [
      { event: 'patient-added', add: 'ssn\u200b' },
      { field: 'ss\u202en', lock: true },
    ]) {
      const e = await alterSchema(store, 'patient', req, jane).catch((x: unknown) => x);
      expect((e as EventDbxError).code).toBe('EDBX_ERR_INVALID_FIELD_NAME');
    }
    // Names the schema does not hold still follow the rule, to remove or unlock as well.
    const body = (await getSchema(store, 'patient')) as Schema;
    expect(refusal(() => alterBody(body, { event: 'patient-added', remove: 'x\u200b' })).code).toBe(
      'EDBX_ERR_INVALID_FIELD_NAME',
    );
    expect(refusal(() => alterBody(body, { field: 'x\u200b', lock: false })).code).toBe(
      'EDBX_ERR_INVALID_FIELD_NAME',
    );
  });

  it('a token scoped to an id no aggregate can have still authenticates and is listed', async () => {
    const { token } = await createToken(
      store,
      { group: 'doctors', user: 'ann', scopes: ['patient/p-001'] },
      jane,
    );
    const old: TokenRecord = { ...store.tokens.get(hashToken(token))!, scopes: ['patient/p-001 '] };
    await store.engine.write(
      [{ type: 'put', space: 'main', key: K.tokenKey(old.hash), value: sealJson(plainCodec, old) }],
      { sync: true },
    );
    await reopen();
    const t = authenticate(store, `Bearer ${token}`, { write: false });
    expect(t.scopes).toEqual(['patient/p-001 ']);
    expect((await listTokens(store)).map((x) => x.scopes)).toEqual([['patient/p-001 ']]);
  });
});
