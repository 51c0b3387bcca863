/** Opening the store for a CLI command, and the local identity of CLI writes made without a token. */
import { statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type KeyProof, proveKeys } from '../core/crypto/key-proof.js';
import { validateKeyringRecord } from '../core/crypto/keyring.js';
import { err, shellWord } from '../core/errors.js';
import type { IssuedBy } from '../core/event.js';
import { LOCAL_GROUP } from '../core/tokens.js';
import { type Config, loadConfig } from '../config/config.js';
import { accountName } from '../fs/file-access.js';
import { readNoFollow } from '../fs/no-follow.js';
import { clockLagMessage } from '../store/clock.js';
import { installSchemas } from '../store/schemas.js';
import type { EventStore } from '../store/store.js';
import { KEYRING_COPY, type SecureStore, openDataDir } from '../store/secure.js';
import { checkNewStoreDir } from './data-dir.js';
import { warn } from './stderr.js';

/**
 * Writes made by the local CLI without a token are recorded as group `local` and the OS user. No token
 * is issued for that group (store/tokens.ts), so no HTTP write is recorded the same way.
 */
export function localIdentity(): IssuedBy {
  let user = process.env.USER ?? 'unknown';
  try {
    user = os.userInfo().username;
  } catch {
    // no passwd entry (containers): fall back to $USER
  }
  return { group: LOCAL_GROUP, user };
}

export async function requireConfig(configFile?: string): Promise<Config> {
  const config = await loadConfig(configFile);
  if (!config.exists && !(config.masterKey && config.dek))
    throw err('EDBX_ERR_CONFIG_MISSING', { path: config.path });
  requireKeys(config);
  return config;
}

/** Both keys, from the file or (when the file leaves them out) the environment. */
export function requireKeys(config: Config): void {
  if (!config.masterKey)
    throw err('EDBX_ERR_CONFIG_KEYS_NOT_SET', {
      missing: 'master key',
      path: config.path,
      absent: !config.exists,
      env: 'EVENTDBX_MASTER_KEY',
      flag: '--master-key',
    });
  if (!config.dek)
    throw err('EDBX_ERR_CONFIG_KEYS_NOT_SET', {
      missing: 'data encryption key',
      path: config.path,
      absent: !config.exists,
      env: 'EVENTDBX_DEK',
      flag: '--dek',
    });
  warnIfKeysReadable(config);
}

/** A config file holding keys that others can read (written by hand, copied with cp): say so, once. */
function warnIfKeysReadable(config: Config): void {
  if (!config.file.master_key && !config.file.dek) return;
  let mode: number;
  try {
    mode = statSync(config.path).mode & 0o777;
  } catch {
    return;
  }
  if ((mode & 0o077) === 0) return;
  const octal = mode.toString(8).padStart(4, '0');
  warn(`${config.path} holds keys and others can read it (mode ${octal}): run \`chmod 600 ${config.path}\``);
}

/**
 * A data dir that other users can open (made by hand before the first `start`, or loosened since):
 * they could read what RocksDB keeps in clear (the wrapped keyring to guess the master key offline,
 * aggregate and event ids) and copy the store. Said, not fixed: the directory is the user's to chmod.
 * Files the store creates are owner-only whatever the directory's mode (see private-umask.ts).
 */
export function warnIfDataDirOpen(dataDir: string): void {
  let mode: number;
  try {
    mode = statSync(dataDir).mode & 0o777;
  } catch {
    return; // not there yet: it is created 0700
  }
  if ((mode & 0o077) === 0) return;
  const octal = mode.toString(8).padStart(4, '0');
  const dir = shellWord(dataDir);
  warn(`data dir ${dataDir} is open to other users (mode ${octal}): run \`chmod 700 ${dir}\``);
}

/** Data dirs already warned about in this process (restart checks, then its start checks again). */
const ownerWarned = new Set<string>();

/**
 * A data dir that belongs to another account than the one running the command (qa-pen #3): that
 * account can put links and files in it (a PID file naming any process, a link where the log or a
 * RocksDB file will be written), and this process would act on them with its own rights. EventDBX's
 * own files are never opened through a link (fs/no-follow.ts), but RocksDB opens its files by
 * name, and a PID file says which process `stop` signals. So root refuses such a data dir
 * (EDBX_ERR_DATA_DIR_OWNER: run as its owner), and another user is warned. One owned by root is
 * trusted: root needs no links to act as root. Checked before anything in it is read or written.
 */
export function checkDataDirOwner(dataDir: string): void {
  const euid = process.geteuid?.();
  if (euid === undefined) return; // no uids (Windows)
  let owner: number;
  try {
    owner = statSync(dataDir).uid;
  } catch {
    return; // not there yet: this user creates it
  }
  if (owner === euid || owner === 0) return;
  const name = accountName(owner);
  const who = name === undefined ? `uid ${owner}` : `${name} (uid ${owner})`;
  if (euid === 0)
    throw err('EDBX_ERR_DATA_DIR_OWNER', {
      path: dataDir,
      owner: who,
      user: name ?? `uid ${owner}`,
      sudo_user: name ?? `#${owner}`,
    });
  if (ownerWarned.has(dataDir)) return;
  ownerWarned.add(dataDir);
  const me = accountName(euid);
  warn(
    `data dir ${dataDir} belongs to ${who}, not to this user (${me === undefined ? `uid ${euid}` : `${me}, uid ${euid}`}): that account can plant links and files there that this command acts on with your rights; run it as ${name ?? `uid ${owner}`} (\`sudo -u ${shellWord(name ?? `#${owner}`)} eventdbx …\`)`,
  );
}

/**
 * Proof of the keys of `config` for a running server to check (see core/crypto/key-proof.ts), made
 * with the install salt from the data dir's keyring copy; undefined when there is no readable copy
 * (no server has opened the data dir: the command opens the store itself and checks the keys there).
 * `withDek: false` proves the master key alone (`config`).
 */
export async function proofOfKeys(config: Config, withDek = true): Promise<KeyProof | undefined> {
  if (!config.masterKey) return undefined;
  let salt: Buffer;
  try {
    const record = validateKeyringRecord(
      JSON.parse(await readNoFollow(path.join(config.dataDir, KEYRING_COPY))),
    );
    salt = Buffer.from(record.salt, 'base64');
  } catch {
    return undefined;
  }
  return proveKeys({ masterKey: config.masterKey, ...(withDek ? { dek: config.dek } : {}) }, salt);
}

/**
 * A clock behind the newest time the store recorded (this host's clock went back, or the store was
 * written on another host): said on stderr once, as the server logs it; the times this command
 * records are held at that time (store/clock.ts).
 */
function warnOfClockLag(store: EventStore): void {
  store.clock.onLag((lag) => {
    if (lag) warn(clockLagMessage(lag), { clock_behind_ms: lag.behind_ms, held_at: lag.held_at });
  });
}

/** How long a CLI command waits for another command that holds the data dir (RocksDB: one process). */
const LOCK_WAIT_MS = 10_000;

/**
 * Open the store in this process (no server runs); schemas apply in the configured mode (`restrict`,
 * default true), the one a plain `start` would run with. Another CLI
 * command holding the data dir is waited for (it is done in a moment), with backoff, up to
 * LOCK_WAIT_MS; then EDBX_ERR_STORE_LOCKED. A data dir others can open, or that belongs to another
 * account, is warned about first (refused to root: checkDataDirOwner); a directory of other files
 * that holds no store is refused (checkNewStoreDir).
 */
export async function openLocalStore(config: Config, waitMs = LOCK_WAIT_MS): Promise<SecureStore> {
  checkDataDirOwner(config.dataDir);
  checkNewStoreDir(config.dataDir, config.path);
  warnIfDataDirOpen(config.dataDir);
  const deadline = performance.now() + waitMs; // monotonic: a wall-clock step does not end the wait
  for (let delay = 20; ; delay = Math.min(delay * 2, 250)) {
    try {
      const secure = await openDataDir(config);
      await installSchemas(secure.store, config.restrict);
      warnOfClockLag(secure.store);
      return secure;
    } catch (e) {
      if ((e as { code?: string }).code !== 'EDBX_ERR_STORE_LOCKED' || performance.now() + delay > deadline)
        throw e;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
