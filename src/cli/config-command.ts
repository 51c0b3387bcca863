/** `eventdbx config`: persist configuration updates; secrets are never echoed back. */
import { err, toEventDbxError } from '../core/errors.js';
import { wholeNumber } from '../core/names.js';
import {
  type ConfigFile,
  describeConfig,
  loadConfig,
  readConfigFile,
  writeConfigFile,
} from '../config/config.js';
import { reportError } from './report.js';
import { keyValues, printJson } from './output.js';

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

export async function configCommand(opts: Record<string, unknown>, configFile?: string): Promise<number> {
  try {
    const current = await loadConfig(configFile);
    const existing = await readConfigFile(current.path);
    const update: ConfigFile = {
      ...(existing ?? {}),
      ...defined({
        port: numberFlag(opts.port, '--port', 1, 65535),
        data_dir: opts.dataDir as string | undefined,
        master_key: secretFlag(opts.masterKey, '--master-key'),
        dek: secretFlag(opts.dek, '--dek'),
        memory_threshold: numberFlag(opts.memoryThreshold, '--memory-threshold', 1),
      }),
    };
    if (!existing && !(update.master_key && update.dek)) throw err('EDBX_ERR_CONFIG_KEYS_REQUIRED');
    const changed = Object.keys(defined(opts)).filter((k) => k !== 'json').length > 0;
    if (changed || !existing) await writeConfigFile(current.path, update);
    const shown = describeConfig(await loadConfig(configFile));
    if (opts.json) printJson({ saved: changed || !existing, config: shown });
    else
      process.stdout.write(`${changed || !existing ? `saved ${current.path}\n` : ''}${keyValues(shown)}\n`);
    return 0;
  } catch (e) {
    return reportError(toEventDbxError(e));
  }
}

function defined<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
