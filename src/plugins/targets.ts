/**
 * Checks, at configuration time, that a file sink's target can be written: a file path that is not a
 * directory, under directories (not under a regular file). Delivery would otherwise fail on every
 * event, long after the command said all was well. The paths are the server's (the CLI resolved them
 * where it ran, on the same machine).
 */
import path from 'node:path';
import { err } from '../core/errors.js';
import { specialKind, statOrNone } from './files.js';
import type { PluginKind, SettingsByKind } from './types.js';

const q = (v: string) => JSON.stringify(v);
const invalid = (plugin: string, reason: string) => err('EDBX_ERR_PLUGIN_CONFIG_INVALID', { plugin, reason });

/** The nearest existing ancestor of `dir` (or `dir`) must be a directory: the rest can be created. */
async function checkDir(plugin: string, flag: string, given: string, dir: string): Promise<void> {
  for (let d = dir; ; d = path.dirname(d)) {
    const st = await statOrNone(d);
    if (st) {
      if (st.isDirectory()) return;
      throw invalid(
        plugin,
        `${flag} ${q(given)}: ${q(d)} is a file, not a directory: use a path under a directory`,
      );
    }
    if (path.dirname(d) === d) return;
  }
}

async function checkFile(plugin: string, flag: string, file: string, example: string): Promise<void> {
  const st = await statOrNone(file);
  if (st?.isDirectory())
    throw invalid(
      plugin,
      `${flag} ${q(file)} is a directory: use a file path, e.g. ${q(path.join(file, example))}`,
    );
  const kind = st && specialKind(st);
  if (kind !== undefined)
    throw invalid(plugin, `${flag} ${q(file)} is ${kind}, not a regular file: use a regular file's path`);
  await checkDir(plugin, flag, file, path.dirname(file));
}

/** Refuse a file target that cannot be written (the network targets are checked by buildSettings). */
export async function checkTarget<K extends PluginKind>(kind: K, settings: SettingsByKind[K]): Promise<void> {
  const s = settings as SettingsByKind[PluginKind];
  if (kind === 'sqlite') await checkFile(kind, '--path', (s as SettingsByKind['sqlite']).path, 'mirror.db');
  if (kind === 'json') await checkFile(kind, '--path', (s as SettingsByKind['json']).path, 'events.jsonl');
  if (kind === 'csv') {
    const dir = (s as SettingsByKind['csv']).output_dir;
    await checkDir(kind, '--output-dir', dir, dir);
  }
}
