/**
 * Opening a store with its keys: the keyring (data keys wrapped under the master key) and the Ed25519
 * checkpoint signing key live in the store itself under G keys. A wrong master key fails before
 * anything is read or written. A new DEK becomes the key for new writes (rotation); a new master key
 * re-wraps the keyring without rewriting data.
 */
import { createPublicKey } from 'node:crypto';
import path from 'node:path';
import {
  type AesGcmCodec,
  KeyCheck,
  type KeyringRecord,
  createKeyring,
  generateSigningKey,
  getKeyringSecret,
  openKeyring,
  putKeyringSecret,
  rewrapKeyring,
  unlockKeyring,
  validateKeyringRecord,
} from '../core/crypto/index.js';
import { err } from '../core/errors.js';
import type { StorageEngine } from '../storage/engine.js';
import { createEngine } from '../storage/index.js';
import { plainFileExists, replaceFile, replaceFileSync } from '../fs/no-follow.js';
import { globalKey } from './keys.js';
import { ACKNOWLEDGED_HEAD } from './acknowledged.js';
import { KEYRING_COPY, keyRefusal, readKeyringFile, refuseOtherDek } from './keyring-copy.js';
import { mixedRestore } from './restore-files.js';
import { BACKUP_MARKER, type BackupKeys } from './restored.js';
import { AUDIT_ID, AUDIT_TYPE, EventStore, type EventStoreOptions } from './store.js';
import type { WriteContext } from './types.js';
import { makeDir } from '../fs/make-dir.js';

export interface Keys {
  readonly masterKey: string | undefined;
  readonly dek: string | undefined;
}

export interface SecureStore {
  readonly store: EventStore;
  /** PEM of the Ed25519 private key signing checkpoints (never log it). */
  readonly signingKeyPem: string;
  readonly publicKeyPem: string;
  /** Where the keyring copy is kept (see openSecureStore). */
  readonly keyringFile?: string;
  /** What happened to the DEK at open: 'created' for a new store. */
  readonly dek: 'created' | 'active' | 'reactivated' | 'added' | 'not-given';
  /** Checks the keys a CLI command proves over the control socket (follows `changeKeys`). */
  readonly keyCheck: KeyCheck;
  /**
   * The fingerprints of the keys in force (a backup records them): the master key's is worked out
   * the first time it is asked for (one scrypt), the DEK's from the codec in use.
   */
  keyFingerprints(): BackupKeys;
}

const KEYRING = globalKey('keyring');
const SIGNING = 'checkpoint-signing-key';

async function readKeyring(engine: StorageEngine): Promise<KeyringRecord | undefined> {
  const raw = await engine.get('main', KEYRING);
  if (!raw) return undefined;
  try {
    return validateKeyringRecord(JSON.parse(raw.toString('utf8')));
  } catch (e) {
    throw err('EDBX_ERR_INTEGRITY', { where: 'keyring', reason: 'the stored keyring is damaged' }, e);
  }
}

const encode = (r: KeyringRecord) => Buffer.from(JSON.stringify(r), 'utf8');

// Through a new temporary file renamed over the copy: a link at either name is never written through.
const writeKeyringFile = (file: string, record: KeyringRecord) => replaceFile(file, JSON.stringify(record));
const writeKeyringFileSync = (file: string, record: KeyringRecord) =>
  replaceFileSync(file, JSON.stringify(record));

/** Open the store at `engine` with its keys (creating the keyring on a new store). */
export async function openSecureStore(
  engine: StorageEngine,
  keys: Keys,
  options: Omit<EventStoreOptions, 'engine' | 'codec'> & {
    /**
     * A copy of the keyring kept beside the engine's files (holds no secret: everything in it is
     * wrapped under the master key). A wrong master key is refused from it before the engine is
     * even opened, so a refused start leaves the data dir byte for byte as it was.
     */
    readonly keyringFile?: string;
  } = {},
): Promise<SecureStore> {
  if (!keys.masterKey) throw err('EDBX_ERR_CONFIG_KEYS_REQUIRED');
  const { keyringFile, ...storeOptions } = options;
  const copy = keyringFile ? await readKeyringFile(keyringFile) : undefined;
  const unlocked = copy ? unlockKeyring(copy, keys.masterKey) : undefined;
  await engine.open();
  try {
    const existing = await readKeyring(engine);
    let record: KeyringRecord;
    let status: SecureStore['dek'];
    let opened;
    // Written back only when it changed: a new store, a DEK added or made active again, a signing key
    // added. (Every open used to write it, synced: an fsync and a write thread for each CLI command.)
    let changed: boolean;
    if (!existing) {
      // A new keyring here would be written over the copy: the keys of every record still stored,
      // lost for good. The store lost its keyring (a write-ahead log cut short, files removed).
      if (copy)
        throw err('EDBX_ERR_INTEGRITY', {
          where: 'the keyring',
          reason: `the store holds none but ${keyringFile} says it had one (its write-ahead log was damaged or cut short, or its files were removed); restore a backup`,
        });
      if (!keys.dek) throw err('EDBX_ERR_CONFIG_KEYS_REQUIRED');
      opened = createKeyring(keys.masterKey, keys.dek);
      record = opened.record;
      status = 'created';
      changed = true;
    } else {
      const sameKek =
        copy &&
        copy.kek_salt === existing.kek_salt &&
        JSON.stringify(copy.scrypt) === JSON.stringify(existing.scrypt);
      opened = openKeyring(existing, keys.masterKey, keys.dek, new Date(), sameKek ? unlocked : undefined);
      record = opened.record;
      status = opened.dekStatus;
      refuseOtherDek(status);
      changed = opened.rotated;
    }
    let signing = getKeyringSecret(record, opened.kek, SIGNING);
    if (!signing) {
      signing = Buffer.from(generateSigningKey().privateKeyPem, 'utf8');
      record = putKeyringSecret(record, opened.kek, SIGNING, signing);
      changed = true;
    }
    if (changed)
      await engine.write([{ type: 'put', space: 'main', key: KEYRING, value: encode(record) }], {
        sync: true,
      });
    if (keyringFile && JSON.stringify(copy) !== JSON.stringify(record))
      await writeKeyringFile(keyringFile, record);
    const store = await EventStore.open({ ...storeOptions, engine, codec: opened.codec });
    const signingKeyPem = signing.toString('utf8');
    const publicKeyPem = createPublicKey(signingKeyPem).export({ type: 'spki', format: 'pem' }).toString();
    const keyCheck = new KeyCheck(keys.masterKey, Buffer.from(record.salt, 'base64'));
    const { scrypt } = record;
    return {
      store,
      signingKeyPem,
      publicKeyPem,
      dek: status,
      keyCheck,
      keyFingerprints() {
        const codec = store.env.codec as Partial<AesGcmCodec>;
        return {
          master_key: keyCheck.masterKeyFingerprint(scrypt),
          dek: codec.fingerprint?.() ?? 'none',
          dek_id: codec.activeKeyId ?? 0,
        };
      },
      ...(keyringFile ? { keyringFile } : {}),
    };
  } catch (e) {
    await engine.close();
    throw e;
  }
}

export interface KeyChange {
  /** The master key the store is open with (needed to unwrap the keyring). */
  readonly currentMasterKey: string;
  readonly newMasterKey?: string | undefined;
  readonly newDek?: string | undefined;
}

/**
 * Rotate keys on an open store, atomically with an audit entry: a new DEK becomes the key for new
 * writes (older records stay readable); a new master key re-wraps the keyring (no data rewritten).
 */
export async function changeKeys(
  secure: SecureStore,
  change: KeyChange,
  ctx: WriteContext,
  otherChanges: Record<string, string> = {},
): Promise<{ dek: string; master_key: string }> {
  const { store } = secure;
  return store.exclusive([[AUDIT_TYPE, AUDIT_ID]], async (tx) => {
    const existing = await readKeyring(store.engine);
    if (!existing) throw err('EDBX_ERR_INTEGRITY', { where: 'keyring', reason: 'the store has no keyring' });
    let record = existing;
    let dek = 'unchanged';
    let codec;
    if (change.newDek !== undefined) {
      const opened = openKeyring(record, change.currentMasterKey, change.newDek);
      record = opened.record;
      codec = opened.codec;
      dek =
        opened.dekStatus === 'added'
          ? 'rotated to a new key'
          : opened.dekStatus === 'reactivated'
            ? 'switched back to an earlier key'
            : 'unchanged';
    } else {
      openKeyring(record, change.currentMasterKey, undefined); // proves the current master key
    }
    const masterChanged =
      change.newMasterKey !== undefined && change.newMasterKey !== change.currentMasterKey;
    if (masterChanged) record = rewrapKeyring(record, change.currentMasterKey, change.newMasterKey!);
    if (record !== existing) {
      tx.put(KEYRING, encode(record));
      const file = secure.keyringFile;
      // The copy follows as soon as the store's keyring is durable, before the change is acknowledged.
      if (file) tx.afterCommit(() => writeKeyringFileSync(file, record));
    }
    if (masterChanged) {
      const next = change.newMasterKey!;
      tx.afterCommit(() => secure.keyCheck.setMasterKey(next));
    }
    const master_key = masterChanged ? 're-wrapped under the new master key' : 'unchanged';
    store.audit(tx, ctx, 'config-changed', { dek, master_key, ...otherChanges });
    if (codec) {
      const next = codec;
      tx.afterCommit(() => store.replaceCodec(next));
    }
    return { dek, master_key };
  });
}

export { KEYRING_COPY } from './keyring-copy.js';

/** Open the RocksDB store of a data dir (created owner-only) with its keys. */
export async function openDataDir(c: {
  readonly dataDir: string;
  readonly masterKey: string | undefined;
  readonly dek: string | undefined;
  readonly memoryThreshold: number;
  readonly maxPayloadBytes: number;
  readonly maxStateBytes?: number;
  readonly verifyThreads?: number;
}): Promise<SecureStore> {
  // Owner-only: the clear parts of keys (aggregate ids, versions) are not for other users.
  try {
    makeDir(c.dataDir, 0o700);
  } catch (e) {
    const reason = (e as NodeJS.ErrnoException).code ?? 'error';
    throw err('EDBX_ERR_DATA_DIR_NOT_WRITABLE', { path: c.dataDir, reason }, e);
  }
  const restored = plainFileExists(path.join(c.dataDir, BACKUP_MARKER));
  // A backup copied over another store's files: refused before RocksDB replays the other's log onto it.
  const mixed = restored ? await mixedRestore(c.dataDir) : undefined;
  if (mixed) throw mixed;
  try {
    const keys = { masterKey: c.masterKey, dek: c.dek };
    return await openSecureStore(createEngine('rocksdb', c.dataDir), keys, {
      memoryThreshold: c.memoryThreshold,
      maxPayloadBytes: c.maxPayloadBytes,
      ...(c.maxStateBytes === undefined ? {} : { maxStateBytes: c.maxStateBytes }),
      ...(c.verifyThreads === undefined ? {} : { verification: { threads: c.verifyThreads } }),
      keyringFile: path.join(c.dataDir, KEYRING_COPY),
      acknowledgedHead: {
        file: path.join(c.dataDir, ACKNOWLEDGED_HEAD),
        // A link there is refused now, before a server listens, not once it has (recordRestore).
        restored,
      },
    });
  } catch (e) {
    // A restored backup refused for its keys: which keys it needs, by their fingerprints.
    throw restored ? await keyRefusal(e, c.dataDir, c) : e;
  }
}
