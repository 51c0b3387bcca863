/**
 * The keyring copy beside RocksDB's files in a data dir (`keyring.json`, see openSecureStore): it holds
 * no secret. A refusal of the keys on a restored backup names, from it and the backup's `backup.json`,
 * the fingerprints of the keys the backup needs and of the key given (QA disaster-recovery finding 5).
 */
import path from 'node:path';
import {
  type KeyringRecord,
  dekFingerprint,
  masterKeyFingerprint,
  validateKeyringRecord,
} from '../core/crypto/index.js';
import { type EventDbxError, err, isEventDbxError } from '../core/errors.js';
import { readNoFollow } from '../fs/no-follow.js';
import { readMarker } from './restored.js';

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
