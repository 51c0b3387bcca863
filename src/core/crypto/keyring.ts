/**
 * The keyring: every data key a store has used, each wrapped (AES-256-GCM) under the key-encryption key
 * derived from the master key. Rotating the DEK adds a key and makes it active (older records stay
 * readable); changing the master key rewraps the keyring and rewrites no data.
 *
 * The record is safe to persist and print: salts, scrypt parameters, wrapped keys, key ids, dates and a
 * verification blob. Raw keys exist only inside returned codecs and as non-enumerable `kek` properties.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { err } from '../errors.js';
import { attachSecret, unwrapSecret, wrapSecret } from './aead.js';
import { AesGcmCodec } from './codec.js';
import {
  DEFAULT_SCRYPT,
  KEY_BYTES,
  type ScryptParams,
  deriveDataKey,
  deriveKek,
  scryptParamsProblem,
} from './kdf.js';

export interface KeyringRecord {
  readonly version: 1;
  /** base64, HKDF salt of the data keys; fixed for the life of the install. */
  readonly salt: string;
  /** base64, scrypt salt of the KEK; fresh on every rewrap. */
  readonly kek_salt: string;
  readonly scrypt: ScryptParams;
  /** base64, a fixed constant wrapped under the KEK: tells a wrong master key from a damaged keyring. */
  readonly check: string;
  /** Key id used for new writes. */
  readonly active: number;
  readonly keys: ReadonlyArray<{
    readonly id: number;
    readonly wrapped: string;
    readonly created_at: string;
  }>;
  /** Other secrets wrapped under the KEK (e.g. the checkpoint signing key), rewrapped with the keys. */
  readonly wrapped_secrets?: Readonly<Record<string, string>>;
}

/** What `openKeyring` did with the DEK it was given. */
export type DekStatus = 'not-given' | 'active' | 'reactivated' | 'added';

/** The KEK, attached non-enumerably: it never shows in JSON or logs. Callers must not log it either. */
export interface WithKek {
  readonly kek: Buffer;
}

export interface CreatedKeyring extends WithKek {
  readonly record: KeyringRecord;
  readonly codec: AesGcmCodec;
}

export interface OpenedKeyring extends CreatedKeyring {
  /** True when the record changed (DEK added or reactivated): the caller must persist `record`. */
  readonly rotated: boolean;
  /** Whether the given DEK was already in the keyring ('active' / 'reactivated') or is new ('added'). */
  readonly dekStatus: DekStatus;
}

const CHECK_PLAIN = Buffer.from('eventdbx/keyring/v1/kek-check', 'utf8');
const CHECK_CONTEXT = 'eventdbx/keyring/v1/check';
const keyContext = (id: number): string => `eventdbx/keyring/v1/key/${id}`;
const secretContext = (name: string): string => `eventdbx/keyring/v1/secret/${name}`;
const SALT_BYTES = 32;
const MAX_KEY_ID = 0xffffffff;

const b64 = (minBytes: number) =>
  z
    .string()
    .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64')
    .refine((v) => v.length % 4 === 0 && Buffer.from(v, 'base64').length >= minBytes, {
      message: `must be base64 of at least ${minBytes} bytes`,
    });
const keyId = z.number().int().min(1).max(MAX_KEY_ID);

const RecordSchema = z
  .strictObject({
    version: z.literal(1),
    salt: b64(16),
    kek_salt: b64(16),
    scrypt: z
      .strictObject({ N: z.number(), r: z.number(), p: z.number(), maxmem: z.number() })
      .superRefine((p, ctx) => {
        const problem = scryptParamsProblem(p);
        if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
      }),
    check: b64(1),
    active: keyId,
    keys: z
      .array(z.strictObject({ id: keyId, wrapped: b64(1), created_at: z.iso.datetime({ offset: true }) }))
      .min(1)
      .max(100_000),
    wrapped_secrets: z.record(z.string().regex(/^[a-z0-9_-]{1,64}$/), b64(1)).optional(),
  })
  .superRefine((r, ctx) => {
    const ids = new Set(r.keys.map((k) => k.id));
    if (ids.size !== r.keys.length)
      ctx.addIssue({ code: 'custom', path: ['keys'], message: 'duplicate key id' });
    if (!ids.has(r.active))
      ctx.addIssue({ code: 'custom', path: ['active'], message: 'the active key id is not in keys' });
  });

/**
 * Check that `json` is a well-formed keyring record (structure only, no keys needed).
 * Throws EDBX_ERR_INTEGRITY naming the first bad field.
 *
 * @example
 * const record = validateKeyringRecord(JSON.parse(await readFile(path, 'utf8')));
 */
export function validateKeyringRecord(json: unknown): KeyringRecord {
  const parsed = RecordSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw err('EDBX_ERR_INTEGRITY', {
      where: 'keyring',
      reason: `${issue.path.join('.') || 'record'}: ${issue.message}`,
    });
  }
  return parsed.data;
}

/** Derive the KEK and prove it right with the check blob; a wrong master key fails here, first. */
/**
 * Check a master key against a keyring record (throws EDBX_ERR_WRONG_MASTER_KEY) and return the KEK,
 * attached non-enumerably, for a following `openKeyring` of the same record.
 */
export function unlockKeyring(record: KeyringRecord, masterKey: string): WithKek {
  return attachSecret({}, 'kek', unlock(validateKeyringRecord(record), masterKey)) as WithKek;
}

function unlock(record: KeyringRecord, masterKey: string): Buffer {
  return checked(record, deriveKek(masterKey, Buffer.from(record.kek_salt, 'base64'), record.scrypt));
}

function checked(record: KeyringRecord, kek: Buffer): Buffer {
  let check: Buffer;
  try {
    check = unwrapSecret(kek, record.check, CHECK_CONTEXT);
  } catch {
    kek.fill(0);
    throw err('EDBX_ERR_WRONG_MASTER_KEY');
  }
  if (check.length !== CHECK_PLAIN.length || !timingSafeEqual(check, CHECK_PLAIN)) {
    kek.fill(0);
    throw err('EDBX_ERR_INTEGRITY', { where: 'keyring', reason: 'the master key check does not match' });
  }
  return kek;
}

function unwrapKeys(record: KeyringRecord, kek: Buffer): Map<number, Buffer> {
  const keys = new Map<number, Buffer>();
  for (const k of record.keys) {
    let key: Buffer;
    try {
      key = unwrapSecret(kek, k.wrapped, keyContext(k.id));
    } catch (e) {
      throw err('EDBX_ERR_INTEGRITY', { where: 'keyring', reason: `data key ${k.id} does not unwrap` }, e);
    }
    if (key.length !== KEY_BYTES)
      throw err('EDBX_ERR_INTEGRITY', { where: 'keyring', reason: `data key ${k.id} has a bad length` });
    keys.set(k.id, key);
  }
  return keys;
}

function codecOf(active: number, keys: Map<number, Buffer>): AesGcmCodec {
  const codec = new AesGcmCodec({ activeKeyId: active, keys });
  for (const key of keys.values()) key.fill(0); // the codec holds its own copies
  return codec;
}

/**
 * Create the keyring of a new data dir: fresh salts, the DEK's data key as key 1, a master-key check.
 * `params` defaults to {@link DEFAULT_SCRYPT}; tests pass cheaper ones.
 *
 * @example
 * const { record, codec } = createKeyring('dev-master', 'dev-dek');
 * await writeFile(keyringPath, JSON.stringify(record)); // safe: no secrets in the record
 */
export function createKeyring(
  masterKey: string,
  dek: string,
  now: Date = new Date(),
  params: ScryptParams = DEFAULT_SCRYPT,
): CreatedKeyring {
  const salt = randomBytes(SALT_BYTES);
  const kekSalt = randomBytes(SALT_BYTES);
  const dataKey = deriveDataKey(dek, salt);
  const kek = deriveKek(masterKey, kekSalt, params);
  const record: KeyringRecord = {
    version: 1,
    salt: salt.toString('base64'),
    kek_salt: kekSalt.toString('base64'),
    scrypt: { N: params.N, r: params.r, p: params.p, maxmem: params.maxmem },
    check: wrapSecret(kek, CHECK_PLAIN, CHECK_CONTEXT),
    active: 1,
    keys: [{ id: 1, wrapped: wrapSecret(kek, dataKey, keyContext(1)), created_at: now.toISOString() }],
  };
  return attachSecret({ record, codec: codecOf(1, new Map([[1, dataKey]])) }, 'kek', kek);
}

/**
 * Open a data dir's keyring. Verifies the master key first (EDBX_ERR_WRONG_MASTER_KEY), unwraps every
 * data key, then applies `dek`: a DEK not in the keyring is added under the next id and made active, a
 * known but inactive one is made active again (`rotated: true`; persist `record`). Pass `dek` undefined
 * to open without changing anything. `kek` (non-enumerable) lets the caller wrap other secrets.
 *
 * @example
 * const { codec, record, rotated, dekStatus } = openKeyring(stored, masterKey, dek);
 * if (rotated) await saveKeyring(record); // dekStatus: 'added' (new key) or 'reactivated'
 */
export function openKeyring(
  record: KeyringRecord,
  masterKey: string,
  dek: string | undefined,
  now: Date = new Date(),
  /** A KEK already derived for this record by `unlockKeyring` (saves a second scrypt). */
  derived?: WithKek,
): OpenedKeyring {
  const current = validateKeyringRecord(record);
  const kek = derived ? checked(current, Buffer.from(derived.kek)) : unlock(current, masterKey);
  const keys = unwrapKeys(current, kek);
  let next = current;
  let dekStatus: DekStatus = 'not-given';
  if (dek !== undefined) {
    const dataKey = deriveDataKey(dek, Buffer.from(current.salt, 'base64'));
    let found: number | undefined;
    // Compare with every key, in constant time each, without an early exit.
    for (const [id, key] of keys) if (timingSafeEqual(key, dataKey)) found = id;
    if (found === undefined) {
      let id = 1;
      for (const k of keys.keys()) if (k >= id) id = k + 1;
      if (id > MAX_KEY_ID)
        throw err('EDBX_ERR_INTEGRITY', { where: 'keyring', reason: 'no key id is left for a new DEK' });
      const entry = { id, wrapped: wrapSecret(kek, dataKey, keyContext(id)), created_at: now.toISOString() };
      keys.set(id, dataKey);
      next = { ...current, active: id, keys: [...current.keys, entry] };
      dekStatus = 'added';
    } else {
      dataKey.fill(0);
      dekStatus = found === current.active ? 'active' : 'reactivated';
      if (found !== current.active) next = { ...current, active: found };
    }
  }
  const result = {
    record: next,
    codec: codecOf(next.active, keys),
    rotated: dekStatus === 'added' || dekStatus === 'reactivated',
    dekStatus,
  };
  return attachSecret(result, 'kek', kek);
}

/**
 * Rewrap the keyring under a new master key (fresh KEK salt; optionally new scrypt parameters, by default
 * the record's own). Data keys and the HKDF salt are unchanged, so no stored record is rewritten.
 * A wrong old master key throws EDBX_ERR_WRONG_MASTER_KEY.
 *
 * @example
 * const next = rewrapKeyring(stored, 'old-master', 'new-master');
 * await saveKeyring(next);
 */
export function rewrapKeyring(
  record: KeyringRecord,
  oldMasterKey: string,
  newMasterKey: string,
  params?: ScryptParams,
): KeyringRecord {
  const current = validateKeyringRecord(record);
  const oldKek = unlock(current, oldMasterKey);
  const keys = unwrapKeys(current, oldKek);
  const secrets = Object.entries(current.wrapped_secrets ?? {}).map(
    ([name, wrapped]) => [name, unwrapNamed(oldKek, name, wrapped)] as const,
  );
  oldKek.fill(0);
  const scrypt = params ?? current.scrypt;
  const kekSalt = randomBytes(SALT_BYTES);
  const kek = deriveKek(newMasterKey, kekSalt, scrypt);
  const wrappedSecrets: Record<string, string> = {};
  for (const [name, secret] of secrets) {
    wrappedSecrets[name] = wrapSecret(kek, secret, secretContext(name));
    secret.fill(0);
  }
  const next: KeyringRecord = {
    ...current,
    kek_salt: kekSalt.toString('base64'),
    scrypt: { N: scrypt.N, r: scrypt.r, p: scrypt.p, maxmem: scrypt.maxmem },
    check: wrapSecret(kek, CHECK_PLAIN, CHECK_CONTEXT),
    keys: current.keys.map((k) => ({ ...k, wrapped: wrapSecret(kek, keys.get(k.id)!, keyContext(k.id)) })),
    ...(current.wrapped_secrets === undefined ? {} : { wrapped_secrets: wrappedSecrets }),
  };
  for (const key of keys.values()) key.fill(0);
  kek.fill(0);
  return next;
}

function unwrapNamed(kek: Buffer, name: string, wrapped: string): Buffer {
  try {
    return unwrapSecret(kek, wrapped, secretContext(name));
  } catch (e) {
    throw err('EDBX_ERR_INTEGRITY', { where: 'keyring', reason: `secret ${name} does not unwrap` }, e);
  }
}

/**
 * Store another secret in the keyring, wrapped under the KEK from {@link openKeyring} / {@link createKeyring};
 * it is rewrapped with the data keys on a master-key change. `name`: 1-64 of [a-z0-9_-].
 *
 * @example
 * const next = putKeyringSecret(record, kek, 'checkpoint_signing_key', Buffer.from(privateKeyPem));
 */
export function putKeyringSecret(
  record: KeyringRecord,
  kek: Buffer,
  name: string,
  secret: Buffer,
): KeyringRecord {
  const next = {
    ...record,
    wrapped_secrets: { ...record.wrapped_secrets, [name]: wrapSecret(kek, secret, secretContext(name)) },
  };
  return validateKeyringRecord(next);
}

/**
 * Read a secret stored with {@link putKeyringSecret}; undefined when there is none by that name.
 *
 * @example
 * const pem = getKeyringSecret(record, kek, 'checkpoint_signing_key')?.toString('utf8');
 */
export function getKeyringSecret(record: KeyringRecord, kek: Buffer, name: string): Buffer | undefined {
  const wrapped = record.wrapped_secrets?.[name];
  return wrapped === undefined ? undefined : unwrapNamed(kek, name, wrapped);
}
