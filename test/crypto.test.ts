import { createDecipheriv, hkdfSync, randomBytes, scryptSync } from 'node:crypto';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ERRORS, type ErrorCode, isEventDbxError } from '../src/core/errors.js';
import {
  AesGcmCodec,
  DEFAULT_SCRYPT,
  FORMAT_AES_GCM_V1,
  type KeyringRecord,
  SEAL_OVERHEAD,
  type ScryptParams,
  createKeyring,
  deriveDataKey,
  deriveKek,
  generateSigningKey,
  getKeyringSecret,
  openKeyring,
  openWith,
  putKeyringSecret,
  rewrapKeyring,
  sealWith,
  sign,
  unwrapSecret,
  validateKeyringRecord,
  verifySignature,
  wrapSecret,
} from '../src/core/crypto/index.js';
import { plainCodec } from '../src/store/codec.js';

const FAST: ScryptParams = { N: 2 ** 10, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
// Distinctive secrets, so a substring search cannot match by accident.
const MK = 'mk-Qz7-correct-horse-master';
const MK2 = 'mk-Wv4-battery-staple-master';
const DEK1 = 'dek-Hx2-first-data-key';
const DEK2 = 'dek-Jp9-second-data-key';

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

function expectCode(fn: () => unknown, code: ErrorCode): Error {
  const e = thrown(fn);
  expect(isEventDbxError(e, code), `expected ${code}, got ${String(e)}`).toBe(true);
  return e as Error;
}

function codecWith(ids: number[], active = ids[0]!): { codec: AesGcmCodec; keys: Map<number, Buffer> } {
  const keys = new Map(ids.map((id) => [id, randomBytes(32)] as const));
  return { codec: new AesGcmCodec({ activeKeyId: active, keys }), keys };
}

describe('AES-256-GCM record codec', () => {
  it('opens what it seals, for any plaintext', () => {
    const { codec } = codecWith([1]);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
        const plain = Buffer.from(bytes);
        const sealed = codec.seal(plain);
        expect(sealed.length).toBe(plain.length + SEAL_OVERHEAD);
        expect(codec.open(sealed, 'test').equals(plain)).toBe(true);
      }),
    );
  });

  it('writes 0x01 | key id (uint32 BE) | nonce | ciphertext | tag, with the header as AAD', () => {
    const { codec, keys } = codecWith([1, 0x01020304], 0x01020304);
    const plain = Buffer.from('{"name":"ada"}');
    const sealed = codec.seal(plain);
    expect(sealed[0]).toBe(FORMAT_AES_GCM_V1);
    expect(sealed.subarray(1, 5).toString('hex')).toBe('01020304');
    const d = createDecipheriv('aes-256-gcm', keys.get(0x01020304)!, sealed.subarray(5, 17));
    d.setAAD(sealed.subarray(0, 5));
    d.setAuthTag(sealed.subarray(sealed.length - 16));
    const out = Buffer.concat([d.update(sealed.subarray(17, sealed.length - 16)), d.final()]);
    expect(out.equals(plain)).toBe(true);
  });

  it('refuses a value with any byte altered (header, nonce, ciphertext or tag)', () => {
    const { codec } = codecWith([1, 2]);
    const sealed = codec.seal(Buffer.from('{"amount":"100"}'));
    for (let i = 0; i < sealed.length; i++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const bad = Buffer.from(sealed);
        bad[i] = bad[i]! ^ mask;
        expectCode(() => codec.open(bad, 'event t/1@1'), 'EDBX_ERR_INTEGRITY');
      }
    }
    fc.assert(
      fc.property(fc.nat(sealed.length - 1), fc.integer({ min: 1, max: 255 }), (i, mask) => {
        const bad = Buffer.from(sealed);
        bad[i] = bad[i]! ^ mask;
        expectCode(() => codec.open(bad, 'event t/1@1'), 'EDBX_ERR_INTEGRITY');
      }),
    );
  });

  it('refuses truncated and empty values', () => {
    const { codec } = codecWith([1]);
    const sealed = codec.seal(Buffer.from('hello'));
    for (const len of [0, 1, 5, 17, SEAL_OVERHEAD - 1, sealed.length - 1])
      expectCode(() => codec.open(sealed.subarray(0, len), 'x'), 'EDBX_ERR_INTEGRITY');
  });

  it('says why an altered record fails authentication, naming where', () => {
    const { codec } = codecWith([1]);
    const bad = codec.seal(Buffer.from('hello'));
    bad[20] = bad[20]! ^ 1;
    const e = expectCode(() => codec.open(bad, 'event order/42@3'), 'EDBX_ERR_INTEGRITY');
    expect(e.message).toContain('event order/42@3');
    expect(e.message).toContain('authentication failed: the record was altered or the key is wrong');
  });

  it('rejects a plaintext-format value instead of accepting it', () => {
    const { codec } = codecWith([1]);
    const planted = plainCodec.seal(Buffer.from('{"owner":"mallory"}'));
    const e = expectCode(() => codec.open(planted, 'event acct/1@2'), 'EDBX_ERR_INTEGRITY');
    expect(e.message).toMatch(/not encrypted/);
  });

  it('rejects an unknown key id, and a key id swapped to another known key', () => {
    const { codec, keys } = codecWith([1, 2]);
    const foreign = sealWith(randomBytes(32), 7, Buffer.from('x'));
    expect(expectCode(() => codec.open(foreign, 'x'), 'EDBX_ERR_INTEGRITY').message).toMatch(
      /key id 7 is unknown/,
    );
    const sealed = sealWith(keys.get(1)!, 1, Buffer.from('x'));
    sealed.writeUInt32BE(2, 1);
    expect(expectCode(() => codec.open(sealed, 'x'), 'EDBX_ERR_INTEGRITY').message).toMatch(/authentication/);
  });

  it('binds the key id as AAD: relabelling a record to another id fails even when both ids hold one key', () => {
    const key = randomBytes(32);
    const codec = new AesGcmCodec({
      activeKeyId: 1,
      keys: new Map([
        [1, key],
        [2, key],
      ]),
    });
    const sealed = codec.seal(Buffer.from('x'));
    sealed.writeUInt32BE(2, 1);
    expectCode(() => codec.open(sealed, 'x'), 'EDBX_ERR_INTEGRITY');
  });

  it('uses a fresh nonce for every seal of the same plaintext', () => {
    const { codec } = codecWith([1]);
    const plain = Buffer.from('same');
    const nonces = new Set<string>();
    for (let i = 0; i < 10_000; i++) nonces.add(codec.seal(plain).subarray(5, 17).toString('hex'));
    expect(nonces.size).toBe(10_000);
  });

  it('opens records of every key it holds and seals with the active one', () => {
    const { codec, keys } = codecWith([1, 2, 3], 2);
    for (const [id, key] of keys) {
      const sealed = sealWith(key, id, Buffer.from(`k${id}`));
      expect(codec.open(sealed, 'x').toString()).toBe(`k${id}`);
    }
    expect(codec.seal(Buffer.from('n')).readUInt32BE(1)).toBe(2);
    expect(openWith((id) => keys.get(id), codec.seal(Buffer.from('n')), 'x').toString()).toBe('n');
  });

  it('keeps working when the caller zeroes the key buffers it passed in', () => {
    const { codec, keys } = codecWith([1]);
    const sealed = codec.seal(Buffer.from('still here'));
    for (const k of keys.values()) k.fill(0);
    expect(codec.open(sealed, 'x').toString()).toBe('still here');
  });
});

describe('key derivation', () => {
  it('derives the KEK with scrypt and data keys with HKDF-SHA256 as specified', () => {
    const salt = randomBytes(32);
    expect(deriveKek(MK, salt, FAST).equals(scryptSync(MK, salt, 32, FAST))).toBe(true);
    const hk = Buffer.from(hkdfSync('sha256', Buffer.from(DEK1), salt, 'eventdbx/dek/v1', 32));
    expect(deriveDataKey(DEK1, salt).equals(hk)).toBe(true);
    expect(deriveDataKey(DEK1, randomBytes(32)).equals(hk)).toBe(false);
  });

  it('keeps the default scrypt parameters strong', () => {
    expect(DEFAULT_SCRYPT).toMatchObject({ N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
  });

  it('refuses empty secrets and weak or broken parameters with coded errors', () => {
    const salt = randomBytes(32);
    expectCode(() => deriveKek('', salt, FAST), 'EDBX_ERR_INVALID_ARGUMENT');
    expectCode(() => deriveDataKey('', salt), 'EDBX_ERR_INVALID_ARGUMENT');
    expectCode(() => deriveDataKey(DEK1, randomBytes(4)), 'EDBX_ERR_INVALID_ARGUMENT');
    expectCode(() => deriveKek(MK, salt, { ...FAST, N: 2 ** 4 }), 'EDBX_ERR_INVALID_ARGUMENT');
    expectCode(() => deriveKek(MK, salt, { ...FAST, N: 3000 }), 'EDBX_ERR_INVALID_ARGUMENT');
    expectCode(() => deriveKek(MK, salt, { ...FAST, maxmem: 1024 }), 'EDBX_ERR_INVALID_ARGUMENT');
  });
});

describe('keyring', () => {
  const create = (dek = DEK1) => createKeyring(MK, dek, new Date('2025-01-01T00:00:00Z'), FAST);

  it('creates a keyring that reopens with the same keys', () => {
    const { record, codec } = create();
    const sealed = codec.seal(Buffer.from('v1'));
    const again = openKeyring(JSON.parse(JSON.stringify(record)) as KeyringRecord, MK, DEK1);
    expect(again.rotated).toBe(false);
    expect(again.dekStatus).toBe('active');
    expect(again.record).toEqual(record);
    expect(again.codec.open(sealed, 'x').toString()).toBe('v1');
    expect(openKeyring(record, MK, undefined).dekStatus).toBe('not-given');
    expect(record.scrypt).toEqual(FAST);
  });

  it('fails fast on a wrong master key without showing the key', () => {
    const { record } = create();
    const e = expectCode(() => openKeyring(record, 'mk-wrong-guess', DEK1), 'EDBX_ERR_WRONG_MASTER_KEY');
    expect((e as unknown as { status: number }).status).toBe(401);
    expect(e.message).toMatch(/master key does not match this data dir/);
    for (const text of [e.message, String(e.stack), JSON.stringify(e), inspect(e)]) {
      expect(text).not.toContain('mk-wrong-guess');
      expect(text).not.toContain(MK);
      expect(text).not.toContain(DEK1);
    }
  });

  it('rotates to a new DEK, keeps old records readable, and reactivates an old DEK', () => {
    const first = create();
    const old = first.codec.seal(Buffer.from('before rotation'));

    const rotated = openKeyring(first.record, MK, DEK2, new Date('2025-02-01T00:00:00Z'));
    expect(rotated.rotated).toBe(true);
    expect(rotated.dekStatus).toBe('added');
    expect(rotated.record.active).toBe(2);
    expect(rotated.record.keys.map((k) => [k.id, k.created_at])).toEqual([
      [1, '2025-01-01T00:00:00.000Z'],
      [2, '2025-02-01T00:00:00.000Z'],
    ]);
    expect(rotated.codec.open(old, 'x').toString()).toBe('before rotation');
    const fresh = rotated.codec.seal(Buffer.from('after rotation'));
    expect(fresh.readUInt32BE(1)).toBe(2);

    const same = openKeyring(rotated.record, MK, DEK2);
    expect([same.rotated, same.dekStatus]).toEqual([false, 'active']);

    const back = openKeyring(rotated.record, MK, DEK1);
    expect([back.rotated, back.dekStatus, back.record.active]).toEqual([true, 'reactivated', 1]);
    expect(back.record.keys).toHaveLength(2);
    expect(back.codec.seal(Buffer.from('y')).readUInt32BE(1)).toBe(1);
    expect(back.codec.open(old, 'x').toString()).toBe('before rotation');
    expect(back.codec.open(fresh, 'x').toString()).toBe('after rotation');
  });

  it('rewraps under a new master key without touching data, and then refuses the old key', () => {
    const first = create();
    const withSecret = putKeyringSecret(first.record, first.kek, 'signing_key', Buffer.from('pem-bytes'));
    const sealed = first.codec.seal(Buffer.from('kept'));

    const next = rewrapKeyring(withSecret, MK, MK2);
    expect(next.salt).toBe(first.record.salt);
    expect(next.kek_salt).not.toBe(first.record.kek_salt);
    expect(next.keys.map((k) => k.wrapped)).not.toEqual(first.record.keys.map((k) => k.wrapped));

    const opened = openKeyring(next, MK2, DEK1);
    expect(opened.rotated).toBe(false);
    expect(opened.codec.open(sealed, 'x').toString()).toBe('kept');
    expect(getKeyringSecret(next, opened.kek, 'signing_key')?.toString()).toBe('pem-bytes');
    expect(getKeyringSecret(next, opened.kek, 'other')).toBeUndefined();

    expectCode(() => openKeyring(next, MK, DEK1), 'EDBX_ERR_WRONG_MASTER_KEY');
    expectCode(() => rewrapKeyring(next, MK, 'mk-anything'), 'EDBX_ERR_WRONG_MASTER_KEY');
  });

  it('can raise the scrypt parameters on rewrap', () => {
    const { record } = create();
    const stronger = { ...FAST, N: 2 ** 11 };
    const next = rewrapKeyring(record, MK, MK, stronger);
    expect(next.scrypt).toEqual(stronger);
    expect(openKeyring(next, MK, DEK1).dekStatus).toBe('active');
  });

  it('never puts a secret in JSON or inspect output of anything it returns', () => {
    const created = create();
    const rotated = openKeyring(created.record, MK, DEK2);
    const rewrapped = rewrapKeyring(rotated.record, MK, MK2);
    const reopened = openKeyring(rewrapped, MK2, DEK1);
    const pair = generateSigningKey();
    const salt = Buffer.from(created.record.salt, 'base64');
    const rawKeys = [DEK1, DEK2].map((d) => deriveDataKey(d, salt));
    const keks = [created.kek, rotated.kek, reopened.kek];
    const forbidden = [MK, MK2, DEK1, DEK2, pair.privateKeyPem, '"type":"Buffer"'];
    for (const k of [...rawKeys, ...keks])
      forbidden.push(k.toString('hex'), k.toString('base64'), k.toString('base64url'));

    const returned = [created, rotated, rewrapped, reopened, pair, created.codec, reopened.codec];
    for (const value of returned) {
      const texts = [JSON.stringify(value), inspect(value, { depth: 10 }), JSON.stringify({ ...value })];
      for (const text of texts) for (const secret of forbidden) expect(text).not.toContain(secret);
    }
    expect(JSON.parse(JSON.stringify(reopened.codec))).toEqual({
      format: 'aes-256-gcm',
      active_key_id: 1,
      key_ids: [1, 2],
    });
    expect(Object.keys(reopened).sort()).toEqual(['codec', 'dekStatus', 'record', 'rotated']);
    expect(reopened.kek).toHaveLength(32);
  });

  it('validates the record structure', () => {
    const { record } = create();
    expect(validateKeyringRecord(JSON.parse(JSON.stringify(record)))).toEqual(record);
    const bad: unknown[] = [
      null,
      'x',
      { ...record, version: 2 },
      { ...record, salt: 'not base64!' },
      { ...record, salt: Buffer.alloc(4).toString('base64') },
      { ...record, active: 9 },
      { ...record, keys: [] },
      { ...record, keys: [...record.keys, record.keys[0]] },
      { ...record, scrypt: { ...record.scrypt, N: 2 ** 30 } },
      { ...record, master_key: MK },
    ];
    for (const b of bad) {
      const e = expectCode(() => validateKeyringRecord(b), 'EDBX_ERR_INTEGRITY');
      expect(e.message).not.toContain(MK);
    }
  });

  it('detects a keyring whose wrapped keys were swapped or altered', () => {
    const rotated = openKeyring(create().record, MK, DEK2).record;
    const [k1, k2] = rotated.keys;
    const swapped = {
      ...rotated,
      keys: [
        { ...k1!, wrapped: k2!.wrapped },
        { ...k2!, wrapped: k1!.wrapped },
      ],
    };
    expectCode(() => openKeyring(swapped, MK, undefined), 'EDBX_ERR_INTEGRITY');
  });
});

describe('secret wrapping and checkpoint signing', () => {
  it('wraps and unwraps a secret bound to its context', () => {
    const kek = randomBytes(32);
    const wrapped = wrapSecret(kek, Buffer.from('s3cr3t'), 'ctx');
    expect(unwrapSecret(kek, wrapped, 'ctx').toString()).toBe('s3cr3t');
    expectCode(() => unwrapSecret(kek, wrapped, 'other'), 'EDBX_ERR_INTEGRITY');
    expectCode(() => unwrapSecret(randomBytes(32), wrapped, 'ctx'), 'EDBX_ERR_INTEGRITY');
    expectCode(() => unwrapSecret(kek, wrapped.slice(0, -4), 'ctx'), 'EDBX_ERR_INTEGRITY');
  });

  it('signs and verifies; a tampered message or signature fails', () => {
    const pair = generateSigningKey();
    const message = Buffer.from('{"root":"ab12","size":42}');
    const signature = sign(pair.privateKeyPem, message);
    expect(signature).toHaveLength(64);
    expect(verifySignature(pair.publicKeyPem, message, signature)).toBe(true);

    const altered = Buffer.from(message);
    altered[3] = altered[3]! ^ 1;
    expect(verifySignature(pair.publicKeyPem, altered, signature)).toBe(false);
    const badSig = Buffer.from(signature);
    badSig[10] = badSig[10]! ^ 1;
    expect(verifySignature(pair.publicKeyPem, message, badSig)).toBe(false);
    expect(verifySignature(pair.publicKeyPem, message, signature.subarray(0, 10))).toBe(false);
    expect(verifySignature(generateSigningKey().publicKeyPem, message, signature)).toBe(false);
    expectCode(() => sign('not a pem', message), 'EDBX_ERR_INTEGRITY');
  });

  it('keeps the signing key wrapped under the keyring KEK', () => {
    const { record, kek } = createKeyring(MK, DEK1, undefined, FAST);
    const pair = generateSigningKey();
    const stored = putKeyringSecret(record, kek, 'checkpoint_signing_key', Buffer.from(pair.privateKeyPem));
    expect(JSON.stringify(stored)).not.toContain('PRIVATE KEY');
    const { kek: kek2 } = openKeyring(stored, MK, undefined);
    const pem = getKeyringSecret(stored, kek2, 'checkpoint_signing_key')!.toString('utf8');
    const message = Buffer.from('checkpoint');
    expect(verifySignature(pair.publicKeyPem, message, sign(pem, message))).toBe(true);
  });
});

describe('error registry', () => {
  it('documents the wrong-master-key code', () => {
    const spec = ERRORS.EDBX_ERR_WRONG_MASTER_KEY;
    expect(spec.doc.length).toBeGreaterThan(10);
    expect([401, 403]).toContain(spec.status);
  });
});
