/**
 * Plugin configurations and field mappings against the audit log. Both are stored beside the events
 * (sealed X keys) and changed only by audited jobs: each configure, disable and removal writes its
 * entry atomically with the record, and so does each `plugin map`. So what is stored must be what the
 * log's latest entries say. A removed plugin's record copied back from an old backup, an older
 * configuration put back over a newer one, a plugin slipped in or deleted, mappings rolled back —
 * with write access to the data dir but not the keys — show up here: `audit verify` reports them, and
 * the delivery host refuses to run such a plugin, since the harm (decrypted events delivered to a
 * target the log says is gone) happens at start, before anyone verifies.
 *
 * Configure and disable entries carry `config_digest`, the SHA-256 of the record's canonical JSON. The
 * record holds a random salt that is never shown, so the digest (which admins read in the log) tells
 * nothing about the secrets in it. Entries written before digests existed carry none: for those, only
 * the record's presence, name and enabled state are compared (configuring the plugin again records a
 * digest). `plugin-mapped` entries carry the whole mapping, so mappings are compared exactly.
 *
 * Not checked: cursors and dead letters, which delivery writes without audit entries (a cursor put
 * back only means events are delivered again).
 */
import { canonicalJson } from '../core/canonical.js';
import { isEventDbxError, shellWord } from '../core/errors.js';
import type { EventRecord } from '../core/event.js';
import { sha256 } from '../core/merkle/index.js';
import { prefixEnd } from '../storage/engine.js';
import { openJson } from './codec.js';
import * as K from './keys.js';
import { AUDIT_ID, AUDIT_TYPE, type EventStore } from './store.js';

/** The sections of the mappings record: base types (both SQL plugins) and per-plugin overrides. */
const MAPPING_SECTIONS = ['base', 'postgres', 'sqlite'] as const;
type MappingSection = (typeof MAPPING_SECTIONS)[number];

/** The SHA-256 (hex) of a plugin configuration record's canonical JSON: its `config_digest`. */
export const pluginConfigDigest = (config: object): string =>
  sha256(Buffer.from(canonicalJson(config), 'utf8')).toString('hex');

/** What the audit log's latest entry about one plugin says. */
export interface LoggedPlugin {
  /** The entry's version in the audit log, to name it. */
  readonly entry: number;
  /** False once the entry is a removal. */
  readonly present: boolean;
  readonly enabled: boolean;
  /** Undefined in entries older than digests. */
  readonly digest: string | undefined;
}

/**
 * A field mapping that is not what the log says, and what makes it so. Mappings apply to the whole
 * store, not to one plugin: configuring or removing a plugin leaves them as they are; only `plugin map`
 * (which records a new entry) changes them.
 */
export interface MappingProblem {
  readonly problem: string;
  readonly fix: string;
}

/** The `plugin map` command that records `datatype` for a field in a mapping section. */
const mapCommand = (section: MappingSection, aggregate: string, field: string, datatype: string): string =>
  `\`eventdbx plugin map --aggregate ${shellWord(aggregate)} --field ${shellWord(field)} --datatype ${shellWord(datatype)}${section === 'base' ? '' : ` --plugin ${section}`}\``;

/** A field mapping as its last `plugin-mapped` entry recorded it. */
interface LoggedMapping {
  readonly datatype: string;
  readonly entry: number;
}

/**
 * What the audit log says about plugins, folded entry by entry: a reader that keeps one (the delivery
 * host) reads each entry once, however often it checks (`catchUp` reads only what was appended since).
 */
export class PluginTrail {
  readonly #plugins = new Map<string, LoggedPlugin>();
  /** Mapping section → aggregate and field (`aggregate\0field`) → what the log recorded. */
  readonly #mappings = new Map<MappingSection, Map<string, LoggedMapping>>(
    MAPPING_SECTIONS.map((s) => [s, new Map()]),
  );
  /** The last audit entry folded. */
  #version = 0;
  /** Why the log could not be read: what was folded before may be incomplete, so nothing is vouched. */
  #broken: unknown;

  /** Each plugin the log names, with its latest entry. */
  get plugins(): ReadonlyMap<string, LoggedPlugin> {
    return this.#plugins;
  }

  /** Fold entries in log order (those already folded are skipped). */
  add(entries: Iterable<EventRecord>): void {
    for (const e of entries) {
      if (e.version <= this.#version) continue;
      this.#version = e.version;
      const p = e.payload;
      const name = p.plugin;
      if (name === undefined) continue;
      if (e.event_type === 'plugin-mapped' && p.aggregate && p.field && p.datatype)
        this.#mappings
          .get(name as MappingSection)
          ?.set(`${p.aggregate}\0${p.field}`, { datatype: p.datatype, entry: e.version });
      else if (e.event_type === 'plugin-configured' || e.event_type === 'plugin-disabled')
        this.#plugins.set(name, {
          entry: e.version,
          present: true,
          enabled: p.enabled === 'true',
          digest: p.config_digest,
        });
      else if (e.event_type === 'plugin-removed')
        this.#plugins.set(name, { entry: e.version, present: false, enabled: false, digest: undefined });
    }
  }

  /** Fold what the audit log gained since the last entry folded, a chunk at a time. */
  async catchUp(store: EventStore): Promise<void> {
    if (this.#broken !== undefined) throw this.#broken;
    try {
      const live = await store.meta(AUDIT_TYPE, AUDIT_ID);
      if (!live || live.meta.version <= this.#version) return;
      const range = { fromVersion: this.#version + 1, toVersion: live.meta.version };
      for await (const chunk of store.scanEvents('main', AUDIT_TYPE, AUDIT_ID, range)) this.add(chunk);
    } catch (e) {
      this.#broken = e;
      throw e;
    }
  }

  /**
   * How the stored mappings differ from the log's, one line each (`sections`: those to compare; the
   * delivery host compares only what a plugin uses).
   */
  mappingProblems(stored: unknown, sections: readonly MappingSection[] = MAPPING_SECTIONS): string[] {
    return this.mappingIssues(stored, sections).map((m) => m.problem);
  }

  /** `mappingProblems`, each with the command that makes the stored mapping what the log says. */
  mappingIssues(stored: unknown, sections: readonly MappingSection[] = MAPPING_SECTIONS): MappingProblem[] {
    if (stored !== undefined && !isObject(stored))
      return [
        {
          problem: 'field mappings: the stored record is not a JSON object',
          fix: 'run `eventdbx plugin map …` again for each `plugin-mapped` entry `eventdbx audit list` shows',
        },
      ];
    const record: Partial<Record<MappingSection, unknown>> = stored ?? {};
    const problems: MappingProblem[] = [];
    for (const section of sections) {
      const logged = this.#mappings.get(section)!;
      const have = new Map<string, unknown>();
      const types = record[section];
      for (const [aggregate, fields] of Object.entries(isObject(types) ? types : {}))
        for (const [field, datatype] of Object.entries(isObject(fields) ? fields : {}))
          have.set(`${aggregate}\0${field}`, datatype);
      const what = (field: string) =>
        `field mapping ${field.replace('\0', '.')} (${section === 'base' ? 'postgres and sqlite' : section})`;
      const map = (key: string, datatype: string) => {
        const [aggregate = '', field = ''] = key.split('\0');
        return mapCommand(section, aggregate, field, datatype);
      };
      for (const [field, want] of logged) {
        const got = have.get(field);
        const fix = `run ${map(field, want.datatype)} to apply the type the audit log records again`;
        if (got === undefined)
          problems.push({
            problem: `${what(field)}: missing, the audit log records ${want.datatype} (entry ${want.entry})`,
            fix,
          });
        else if (got !== want.datatype)
          problems.push({
            problem: `${what(field)}: stored ${JSON.stringify(got)}, the audit log records ${want.datatype} (entry ${want.entry})`,
            fix,
          });
      }
      for (const [field, got] of have)
        if (!logged.has(field))
          problems.push({
            problem: `${what(field)}: stored ${JSON.stringify(got)}, but the audit log never recorded it`,
            fix: `record the type you intend with ${map(field, 'text')} (text: as if never mapped) or another --datatype`,
          });
    }
    return problems;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Why a plugin's stored configuration is not the one the audit log vouches for; undefined when it is
 * (or when neither the store nor the log has the plugin). `stored` undefined: no record.
 */
export function pluginConfigProblem(
  name: string,
  stored: object | undefined,
  logged: LoggedPlugin | undefined,
): string | undefined {
  if (stored === undefined)
    return logged?.present
      ? `missing, the audit log records its configuration (entry ${logged.entry})`
      : undefined;
  if (!logged) return 'stored, but the audit log never recorded it';
  if (!logged.present) return `stored, but the audit log records its removal (entry ${logged.entry})`;
  const record = stored as { readonly name?: unknown; readonly enabled?: unknown };
  // The seal does not cover the key: a record copied onto another plugin's key names the other one.
  if (record.name !== name)
    return `the record stored under its key is plugin ${JSON.stringify(record.name)}'s`;
  if (logged.digest !== undefined) {
    if (pluginConfigDigest(stored) !== logged.digest)
      return `the stored configuration is not the one the audit log records (entry ${logged.entry})`;
  } else if (record.enabled !== logged.enabled) {
    const state = (on: unknown) => (on === true ? 'enabled' : 'disabled');
    return `${state(record.enabled)}, the audit log records it ${state(logged.enabled)} (entry ${logged.entry})`;
  }
  return undefined;
}

/** `audit verify`'s part for plugins: one line per plugin or mapping that is not what `log` says. */
export async function verifyPluginState(store: EventStore, log: readonly EventRecord[]): Promise<string[]> {
  const trail = new PluginTrail();
  trail.add(log);
  const problems: string[] = [];
  const stored = new Set<string>();
  const prefix = K.pluginSectionPrefix('config');
  for await (const [k, v] of store.engine.range('main', { gte: prefix, lt: prefixEnd(prefix) })) {
    const name = K.decodePluginKey(k);
    stored.add(name);
    let config: unknown;
    try {
      config = openJson(store.env.codec, v, `plugin ${name} config`);
    } catch (e) {
      if (!isEventDbxError(e)) throw e;
      problems.push(e.message);
      continue;
    }
    const problem = isObject(config)
      ? pluginConfigProblem(name, config, trail.plugins.get(name))
      : 'the stored configuration is not a JSON object';
    if (problem) problems.push(`plugin ${name}: ${problem}`);
  }
  for (const [name, logged] of trail.plugins)
    if (!stored.has(name)) {
      const problem = pluginConfigProblem(name, undefined, logged);
      if (problem) problems.push(`plugin ${name}: ${problem}`);
    }
  let mappings: unknown;
  const raw = await store.engine.get('main', K.pluginKey('mappings', ''));
  try {
    mappings = raw && openJson(store.env.codec, raw, 'plugin mappings');
  } catch (e) {
    if (!isEventDbxError(e)) throw e;
    problems.push(e.message);
    return problems;
  }
  for (const problem of trail.mappingProblems(mappings)) problems.push(problem);
  return problems;
}
