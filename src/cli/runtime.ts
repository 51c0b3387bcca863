/** Opening the store for a CLI command, and the local identity of CLI writes made without a token. */
import os from 'node:os';
import { err } from '../core/errors.js';
import type { IssuedBy } from '../core/event.js';
import { type Config, loadConfig } from '../config/config.js';
import { installSchemas } from '../store/schemas.js';
import { type SecureStore, openDataDir } from '../store/secure.js';

/** Writes made by the local CLI without a token are recorded as group `local` and the OS user. */
export function localIdentity(): IssuedBy {
  let user = process.env.USER ?? 'unknown';
  try {
    user = os.userInfo().username;
  } catch {
    // no passwd entry (containers): fall back to $USER
  }
  return { group: 'local', user };
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
      env: 'EVENTDBX_MASTER_KEY',
      flag: '--master-key',
    });
  if (!config.dek)
    throw err('EDBX_ERR_CONFIG_KEYS_NOT_SET', {
      missing: 'data encryption key',
      path: config.path,
      env: 'EVENTDBX_DEK',
      flag: '--dek',
    });
}

/** Open the store in this process (no server runs); schemas apply in the default mode. */
export async function openLocalStore(config: Config): Promise<SecureStore> {
  const secure = await openDataDir(config);
  await installSchemas(secure.store, 'true');
  return secure;
}
