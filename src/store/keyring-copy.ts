/**
 * The keyring copy beside RocksDB's files in a data dir (`keyring.json`, see openSecureStore): it holds
 * no secret, and keys can be checked against it without opening the store, so `config` refuses keys
 * that do not open an existing data dir before it saves them, and takes a master key that opens it as
 * the correction of one that does not (QA disaster-recovery finding 5). A refusal on a restored
 * backup names the fingerprints of the keys the backup needs and of the key given.
 */
import path from 'node:path';
import {
  type DekStatus,
  type KeyringRecord,
  dekFingerprint,
  masterKeyFingerprint,
  openKeyring,
  unlockKeyring,
  validateKeyringRecord,
} from '../core/crypto/index.js';
import { type EventDbxError, err, isEventDbxError } from '../core/errors.js';
import { readNoFollow } from '../fs/no-follow.js';
import { readMarker } from './restored.js';

/**
 * Opening never changes keys: a DEK other than the active one (a typo, a stale environment) is refused
 * before anything is written. Rotation is `config --dek`, audited.
 */
export function refuseOtherDek(status: DekStatus): void {
  if (status === 'added' || status === 'reactivated')
    throw err('EDBX_ERR_DEK_MISMATCH', {
      what:
        status === 'added'
          ? 'is not a key of this store'
          : 'is an earlier key of this store, not its active one',
    });
}

/** The keyring copy's name in a data dir. */
export const KEYRING_COPY = 'keyring.json';

/** The keyring copy at `file`; undefined when missing, unreadable, malformed or a link (never followed). */
export async function readKeyringFile(file: string): Promise<KeyringRecord | undefined> {
  try {
    return validateKeyringRecord(JSON.parse(await readNoFollow(file)));
  } catch {
    return undefined;
  }
}

const copyOf = (dataDir: string) => readKeyringFile(path.join(dataDir, KEYRING_COPY));

/** Whether `masterKey` opens the keyring of `dataDir`; undefined when it has no readable copy. */
export async function masterKeyOpens(dataDir: string, masterKey: string): Promise<boolean | undefined> {
  const copy = await copyOf(dataDir);
  if (!copy) return undefined;
  try {
    unlockKeyring(copy, masterKey);
    return true;
  } catch (e) {
    if (isEventDbxError(e, 'EDBX_ERR_WRONG_MASTER_KEY')) return false;
    throw e;
  }
}

/**
 * Refuse keys that would not open the store of `dataDir` as they are (a master key that does not
 * unlock its keyring, a DEK that is not its active one), as opening it would: nothing is opened or
 * changed. Keys are not checked when the data dir has no readable keyring copy (no store yet).
 */
export async function checkKeysOpen(
  dataDir: string,
  keys: { readonly masterKey: string; readonly dek: string },
): Promise<void> {
  const copy = await copyOf(dataDir);
  if (!copy) return;
  try {
    const unlocked = unlockKeyring(copy, keys.masterKey);
    const status = openKeyring(copy, keys.masterKey, keys.dek, new Date(), unlocked).dekStatus;
    refuseOtherDek(status);
  } catch (e) {
    const refusal = await keyRefusal(e, dataDir, keys, copy);
    // Not a backup's keys: said as what it is, keys for a config that would not open its store.
    if (refusal !== e || !isEventDbxError(e)) throw refusal;
    if (e.code !== 'EDBX_ERR_WRONG_MASTER_KEY' && e.code !== 'EDBX_ERR_DEK_MISMATCH') throw e;
    throw err(e.code, { ...e.params, unsaved: dataDir }, e);
  }
}

/**
 * A refusal of the keys (EDBX_ERR_WRONG_MASTER_KEY, EDBX_ERR_DEK_MISMATCH) on a restored backup
 * whose `backup.json` names its keys, said with their fingerprints and those of the keys given; any
 * other error, or a data dir that is not such a backup, as it was.
 */
export async function keyRefusal(
  e: unknown,
  dataDir: string,
  keys: { readonly masterKey: string | undefined; readonly dek: string | undefined },
  copy?: KeyringRecord,
): Promise<unknown> {
  const master = isEventDbxError(e, 'EDBX_ERR_WRONG_MASTER_KEY');
  if (!master && !isEventDbxError(e, 'EDBX_ERR_DEK_MISMATCH')) return e;
  let backup;
  try {
    backup = await readMarker(dataDir);
  } catch {
    return e; // a garbled backup.json: the server's start names it
  }
  if (backup?.keys === undefined) return e;
  const record = copy ?? (await copyOf(dataDir));
  const salt = record && Buffer.from(record.salt, 'base64');
  const given = (key: string | undefined, fp: (k: string, s: Buffer) => string) =>
    key === undefined || salt === undefined ? 'unknown' : fp(key, salt);
  const params = {
    taken_at: backup.taken_at,
    backup_key: master ? backup.keys.master_key : backup.keys.dek,
    key_id: backup.keys.dek_id,
    given: master
      ? given(keys.masterKey, (k, s) => masterKeyFingerprint(k, s, record!.scrypt))
      : given(keys.dek, dekFingerprint),
  };
  return master
    ? err('EDBX_ERR_WRONG_MASTER_KEY', { backup: params }, e)
    : err('EDBX_ERR_DEK_MISMATCH', { ...(e as EventDbxError).params, backup: params }, e);
}
