/**
 * `eventdbx config`: persist configuration updates; secrets are never echoed back. Key changes are
 * applied to the store first (new DEK → key for new writes; new master key → keyring re-wrapped),
 * atomically with an audit entry, through the running server when there is one.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { err, isEventDbxError, toEventDbxError } from '../core/errors.js';
import { wholeNumber } from '../core/names.js';
import { RESTRICT_MODES, type RestrictMode } from '../core/schema.js';
import type { PidInfo } from '../server/daemon-files.js';
import {
  type Config,
  type ConfigFile,
  DEFAULT_DATA_DIR,
  describeConfig,
  loadConfig,
  readConfigFile,
  prepareConfigFile,
} from '../config/config.js';
import { callControl } from '../server/control.js';
import { checkKeysOpen, masterKeyOpens } from '../store/keyring-copy.js';
import { OPS } from './ops.js';
import { keyValues, printJson } from './output.js';
import { reportError } from './report.js';
import { checkDataDirOwner, localIdentity, openLocalStore, proofOfKeys, requireKeys } from './runtime.js';
import { runningServer } from './server-commands.js';
import { dataDirPath } from './spec.js';

function numberFlag(
  value: unknown,
  flag: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  if (value === undefined) return undefined;
  const n = wholeNumber(value);
  if (n === undefined || n < min || n > max) {
    throw err('EDBX_ERR_INVALID_ARGUMENT', {
      name: flag,
      value,
      reason: `use a whole number from ${min} to ${max}`,
    });
  }
  return n;
}

function secretFlag(value: unknown, flag: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0) {
    throw err('EDBX_ERR_INVALID_ARGUMENT', {
      name: flag,
      value: '(empty)',
      reason: 'use a non-empty secret',
    });
  }
  return value;
}

function restrictFlag(value: unknown): RestrictMode | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string' && (RESTRICT_MODES as readonly string[]).includes(value))
    return value as RestrictMode;
  throw err('EDBX_ERR_INVALID_ARGUMENT', { name: '--restrict', value, reason: 'use true, strict or false' });
}

/** Settings a running server read at start (key changes apply to it at once). */
const RESTART_KEYS = ['port', 'data_dir', 'memory_threshold', 'max_connections', 'restrict'] as const;
type RestartKey = (typeof RESTART_KEYS)[number];

function defined<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export async function configCommand(opts: Record<string, unknown>, configFile?: string): Promise<number> {
  try {
    const current = await loadConfig(configFile);
    const existing = await readConfigFile(current.path);
    const flags = defined({
      port: numberFlag(opts.port, '--port', 1, 65535),
      data_dir: opts.dataDir === undefined ? undefined : dataDirPath(String(opts.dataDir)),
      master_key: secretFlag(opts.masterKey, '--master-key'),
      dek: secretFlag(opts.dek, '--dek'),
      memory_threshold: numberFlag(opts.memoryThreshold, '--memory-threshold', 1),
      max_connections: numberFlag(opts.maxConnections, '--max-connections', 1, 1_000_000),
      restrict: restrictFlag(opts.restrict),
    });
    const update: ConfigFile = { ...(existing ?? {}), ...flags };
    // Keys from the environment count (and are not written): secrets need not sit in the file.
    if (!existing && !((update.master_key ?? current.masterKey) && (update.dek ?? current.dek)))
      throw err('EDBX_ERR_CONFIG_KEYS_REQUIRED');
    const changed = Object.keys(flags).length > 0 || !existing;
    // A new config for a data dir that holds a store (a config re-created on a new host), or a config
    // moved to another one: its keys must open that store, or nothing is saved.
    if (!existing || (flags.data_dir !== undefined && !flags.master_key && !flags.dek))
      await checkKeysFor(current, update);
    // The new file is written whole before the store takes a new key or records the change: one that
    // cannot be written (a full disk included) changes nothing. Only its rename is left for after.
    const prepared = changed ? await prepareConfigFile(current.path, update) : undefined;
    let rotated = NOTHING_ROTATED;
    try {
      if (changed && existing) rotated = await applyToStore(current, flags);
    } catch (e) {
      await prepared?.discard();
      throw e;
    }
    try {
      await prepared?.commit();
    } catch (e) {
      throw unrecorded(e, rotated);
    }
    const shown = describeConfig(await loadConfig(configFile));
    const running = changed ? await runningServer(current.dataDir) : undefined;
    // Compared with what the server runs with (defaults included), not with what the file spelled out.
    const effective = {
      port: running?.port ?? current.port,
      data_dir: running?.data_dir ?? current.dataDir,
      memory_threshold: current.memoryThreshold,
      max_connections: current.maxConnections,
      restrict: running?.restrict ?? current.restrict,
    };
    const given = { ...flags, ...(flags.data_dir ? { data_dir: path.resolve(flags.data_dir) } : {}) };
    const pending = running
      ? RESTART_KEYS.filter((k) => given[k] !== undefined && given[k] !== effective[k])
      : [];
    const restart = running && pending.length > 0 ? howToApply(running, pending, given) : undefined;
    if (opts.json)
      printJson({
        saved: changed,
        ...(rotated.corrected ? { corrected: ['master_key'] } : {}),
        config: shown,
        restart_needed: restart !== undefined,
        ...(restart ? { restart_command: restart.command } : {}),
      });
    else {
      if (rotated.corrected)
        process.stdout.write(
          `the master key in ${current.path} did not open the store in ${current.dataDir}; the one given does: saved as a correction (the store's keys are unchanged)\n`,
        );
      process.stdout.write(`${changed ? `saved ${current.path}\n` : ''}${keyValues(shown)}\n`);
      if (restart) process.stdout.write(`the server running for ${current.dataDir} ${restart.says}\n`);
    }
    return 0;
  } catch (e) {
    return reportError(toEventDbxError(e));
  }
}

/**
 * What makes the running server take the changed settings, and how to say it. `restart` keeps the
 * options the server's own command line gave it (a `start --port`): those must be given again. It
 * finds the server by the configured data dir, so a new data dir needs a stop of the old one first.
 */
function howToApply(
  running: PidInfo,
  pending: readonly RestartKey[],
  given: Partial<Record<RestartKey, string | number>>,
): { command: string; says: string } {
  const who = `(pid ${running.pid})`;
  if (pending.includes('data_dir')) {
    const command = `eventdbx stop --data-dir ${running.data_dir} && eventdbx start`;
    return { command, says: `${who} keeps its data dir: run \`${command}\` to use the new one` };
  }
  // A server of an earlier version does not record what it was given: restart keeps both.
  const kept = (['port', 'restrict'] as const).filter(
    (k) => pending.includes(k) && (running.given ?? ['port', 'restrict']).includes(k),
  );
  const flag = (k: 'port' | 'restrict', v: unknown) => (k === 'port' ? `--port ${v}` : `--restrict=${v}`);
  const command = ['eventdbx restart', ...kept.map((k) => flag(k, given[k]))].join(' ');
  const because = kept.length
    ? ` (its start was given ${kept.map((k) => flag(k, running[k])).join(' and ')}, which a plain restart keeps)`
    : '';
  return { command, says: `${who} uses the new settings after \`${command}\`${because}` };
}

/**
 * Which keys the store took (new master key, new DEK); `corrected`: the master key given was not a
 * new one but the store's own, replacing one in the file that does not open the store.
 */
interface Rotated {
  readonly masterKey: boolean;
  readonly dek: boolean;
  readonly corrected?: boolean;
}
const NOTHING_ROTATED: Rotated = { masterKey: false, dek: false };

/** The keys `update` leaves in force must open the store of the data dir it names, if it has one. */
async function checkKeysFor(loaded: Config, update: ConfigFile): Promise<void> {
  const env = process.env.EVENTDBX_DATA_DIR;
  const dataDir = env
    ? loaded.dataDir
    : path.resolve(path.dirname(loaded.path), update.data_dir ?? DEFAULT_DATA_DIR);
  const masterKey = process.env.EVENTDBX_MASTER_KEY || update.master_key;
  const dek = process.env.EVENTDBX_DEK || update.dek;
  if (masterKey && dek) await checkKeysOpen(dataDir, { masterKey, dek });
}

/**
 * Whether `--master-key` corrects the file's master key rather than rotating it: the file's key does
 * not open the store (a typo when the config was written), and the key given does. Only a key that
 * opens the store is ever taken, and the store is not changed. A key from the environment is the
 * environment's to correct.
 */
async function isCorrection(loaded: Config, given: string | undefined): Promise<boolean> {
  if (given === undefined || !loaded.masterKey || given === loaded.masterKey) return false;
  if (loaded.file.master_key !== loaded.masterKey) return false;
  return (
    (await masterKeyOpens(loaded.dataDir, loaded.masterKey)) === false &&
    (await masterKeyOpens(loaded.dataDir, given)) === true
  );
}

/**
 * The config file could not be written after the store took a new key: the store and the file now
 * disagree, and the error says how to go on (never quoting a key).
 */
function unrecorded(e: unknown, rotated: Rotated): unknown {
  if (!isEventDbxError(e, 'EDBX_ERR_CONFIG_WRITE') || e.params.written) return e;
  if (!rotated.masterKey && !rotated.dek) return e;
  const applied = [rotated.masterKey && 'master key', rotated.dek && 'DEK'].filter(Boolean).join(' and ');
  const env = [rotated.masterKey && 'EVENTDBX_MASTER_KEY', rotated.dek && 'EVENTDBX_DEK']
    .filter(Boolean)
    .join(' and ');
  // The file's old master key no longer opens the store: the new one must come from the environment.
  const rerun =
    (rotated.masterKey ? 'EVENTDBX_MASTER_KEY=<new master key> ' : '') +
    'eventdbx config' +
    (rotated.masterKey ? ' --master-key <new master key>' : '') +
    (rotated.dek ? ' --dek <new DEK>' : '');
  return err('EDBX_ERR_CONFIG_WRITE', { ...e.params, applied, env, rerun }, e);
}

/** Rotate keys in the store and audit the change (only when the store exists). */
async function applyToStore(
  loaded: Awaited<ReturnType<typeof loadConfig>>,
  flags: Partial<ConfigFile>,
): Promise<Rotated> {
  if (!existsSync(path.join(loaded.dataDir, 'CURRENT'))) return NOTHING_ROTATED;
  const corrected = await isCorrection(loaded, flags.master_key);
  // Keys kept only in the environment until now: a key given here is the current one, being stored.
  const current = {
    ...loaded,
    masterKey: corrected ? flags.master_key : (loaded.masterKey ?? flags.master_key),
    dek: loaded.dek ?? flags.dek,
  };
  requireKeys(current);
  const changes: Record<string, string> = {};
  for (const k of ['port', 'data_dir', 'memory_threshold', 'max_connections', 'restrict'] as const) {
    if (flags[k] !== undefined && flags[k] !== current.file[k])
      changes[k] = `${current.file[k] ?? '(default)'} -> ${flags[k]}`;
  }
  const args = {
    current_master_key: current.masterKey,
    ...(flags.master_key !== undefined && flags.master_key !== current.masterKey
      ? { new_master_key: flags.master_key }
      : {}),
    ...(flags.dek !== undefined && flags.dek !== current.dek ? { new_dek: flags.dek } : {}),
    changes,
  };
  const rotated = {
    masterKey: args.new_master_key !== undefined,
    dek: args.new_dek !== undefined,
    corrected,
  };
  if (!rotated.masterKey && !rotated.dek && Object.keys(changes).length === 0) return rotated;
  const identity = localIdentity();
  checkDataDirOwner(current.dataDir);
  const proof = await proofOfKeys(current, false);
  if (await callControl(current.dataDir, { op: 'config.apply', args, identity, proof })) return rotated;
  // Opened with the master key alone (it proves the authority to change keys), so a DEK being given
  // here is applied and audited by config.apply, and a config file left with an earlier DEK (a crash
  // between the store's change and the file's) can be put right by giving the DEK again.
  const secure = await openLocalStore({ ...current, dek: undefined });
  try {
    await OPS['config.apply']!(secure, args, { issuedBy: identity });
  } finally {
    await secure.store.close();
  }
  return rotated;
}
