/**
 * Plugin settings: validation of what the CLI (or an API client) gives, the retry options, and the
 * masked form shown by `plugin list` and written to the audit log. Secrets (passwords in connection
 * strings, header values) never leave this module unmasked except into the sealed config record.
 */
import path from 'node:path';
import { err } from '../core/errors.js';
import { wholeNumber } from '../core/names.js';
import { maskConnection, parseConnection } from './postgres/connection.js';
import {
  type DeliveryOptions,
  type LogLevel,
  type OnFailure,
  type PluginConfig,
  type PluginKind,
  type SettingsByKind,
  DEFAULT_DELIVERY,
  LOG_LEVELS,
  PLUGIN_KINDS,
} from './types.js';

/** Input of a configure call (CLI flags, snake_case). Only the kind's own settings are read. */
export interface PluginInput {
  readonly connection?: unknown;
  readonly path?: unknown;
  readonly output_dir?: unknown;
  readonly host?: unknown;
  readonly port?: unknown;
  readonly endpoint?: unknown;
  /** `KEY=VALUE` strings. */
  readonly headers?: unknown;
  readonly pretty?: unknown;
  readonly level?: unknown;
  readonly template?: unknown;
  readonly disable?: unknown;
  readonly from_now?: unknown;
  readonly max_attempts?: unknown;
  readonly backoff_ms?: unknown;
  readonly backoff_max_ms?: unknown;
  readonly on_failure?: unknown;
  readonly timeout_ms?: unknown;
}

export function pluginKind(name: unknown): PluginKind {
  if (typeof name === 'string' && (PLUGIN_KINDS as readonly string[]).includes(name))
    return name as PluginKind;
  throw err('EDBX_ERR_PLUGIN_UNKNOWN', { name: String(name) });
}

const invalid = (plugin: string, reason: string) => err('EDBX_ERR_PLUGIN_CONFIG_INVALID', { plugin, reason });

const text = (plugin: string, flag: string, v: unknown): string => {
  if (typeof v !== 'string' || v.trim() === '') throw invalid(plugin, `${flag} is required`);
  if (/[\u0000-\u001f]/.test(v)) throw invalid(plugin, `${flag} may not contain control characters`);
  return v;
};

const filePath = (plugin: string, flag: string, v: unknown): string => path.resolve(text(plugin, flag, v));

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function headers(v: unknown): Record<string, string> {
  if (v === undefined) return {};
  const list = Array.isArray(v) ? v : [v];
  const out: Record<string, string> = {};
  for (const h of list) {
    const s = String(h);
    const eq = s.indexOf('=');
    const key = eq > 0 ? s.slice(0, eq).trim() : '';
    const value = eq > 0 ? s.slice(eq + 1) : '';
    if (!HEADER_NAME.test(key))
      throw invalid('http', `--header ${JSON.stringify(key || s)}: use KEY=VALUE with a valid header name`);
    if (/[\r\n\u0000]/.test(value))
      throw invalid('http', `--header ${key}: the value may not contain line breaks`);
    if (key.toLowerCase() === 'idempotency-key' || key.toLowerCase() === 'content-type')
      throw invalid('http', `--header ${key} is set by EventDBX (the event id / application/json)`);
    out[key] = value;
  }
  return out;
}

function number(plugin: string, flag: string, v: unknown, min: number, max: number): number {
  if (v === undefined) throw invalid(plugin, `${flag} is required`);
  const n = wholeNumber(v);
  if (n === undefined || n < min || n > max)
    throw invalid(plugin, `${flag} ${JSON.stringify(v)}: use a whole number from ${min} to ${max}`);
  return n;
}

/** The kind's settings from the input; throws naming the missing or malformed flag. */
export function buildSettings<K extends PluginKind>(kind: K, i: PluginInput): SettingsByKind[K] {
  const s: { [P in PluginKind]: () => SettingsByKind[P] } = {
    postgres: () => {
      const connection = text('postgres', '--connection', i.connection);
      parseConnection(connection);
      return { connection };
    },
    sqlite: () => ({ path: filePath('sqlite', '--path', i.path) }),
    csv: () => ({ output_dir: filePath('csv', '--output-dir', i.output_dir) }),
    tcp: () => ({ host: text('tcp', '--host', i.host), port: number('tcp', '--port', i.port, 1, 65535) }),
    http: () => {
      const endpoint = text('http', '--endpoint', i.endpoint);
      let url: URL;
      try {
        url = new URL(endpoint);
      } catch {
        throw invalid('http', '--endpoint: use an absolute http:// or https:// URL');
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:')
        throw invalid('http', '--endpoint: use an absolute http:// or https:// URL');
      return { endpoint, headers: headers(i.headers) };
    },
    json: () => ({
      path: filePath('json', '--path', i.path),
      pretty: i.pretty === true || i.pretty === 'true',
    }),
    log: () => {
      if (typeof i.level !== 'string' || !(LOG_LEVELS as readonly string[]).includes(i.level))
        throw invalid('log', `--level ${JSON.stringify(i.level ?? '')}: use one of ${LOG_LEVELS.join(', ')}`);
      if (i.template === undefined) return { level: i.level as LogLevel };
      const template = text('log', '--template', i.template);
      if (template.length > 1000) throw invalid('log', '--template: use at most 1000 characters');
      return { level: i.level as LogLevel, template };
    },
  };
  return s[kind]() as SettingsByKind[K];
}

/** Whether the input carries the kind's required setting (else only enable/disable/retry options change). */
export function hasSettings(kind: PluginKind, i: PluginInput): boolean {
  const required: Record<PluginKind, unknown[]> = {
    postgres: [i.connection],
    sqlite: [i.path],
    csv: [i.output_dir],
    tcp: [i.host, i.port],
    http: [i.endpoint],
    json: [i.path],
    log: [i.level],
  };
  return required[kind].some((v) => v !== undefined);
}

/** Retry options: the given ones over the previous (or default) ones. */
export function buildDelivery(
  kind: PluginKind,
  i: PluginInput,
  previous: DeliveryOptions = DEFAULT_DELIVERY,
): DeliveryOptions {
  const onFailure = i.on_failure;
  if (onFailure !== undefined && onFailure !== 'dead-letter' && onFailure !== 'block')
    throw invalid(kind, `--on-failure ${JSON.stringify(onFailure)}: use dead-letter or block`);
  const d: DeliveryOptions = {
    max_attempts:
      i.max_attempts === undefined
        ? previous.max_attempts
        : number(kind, '--max-attempts', i.max_attempts, 1, 1_000_000),
    backoff_ms:
      i.backoff_ms === undefined
        ? previous.backoff_ms
        : number(kind, '--backoff', i.backoff_ms, 1, 3_600_000),
    backoff_max_ms:
      i.backoff_max_ms === undefined
        ? previous.backoff_max_ms
        : number(kind, '--backoff-max', i.backoff_max_ms, 1, 86_400_000),
    on_failure: (onFailure as OnFailure | undefined) ?? previous.on_failure,
    timeout_ms:
      i.timeout_ms === undefined
        ? previous.timeout_ms
        : number(kind, '--timeout', i.timeout_ms, 1, 3_600_000),
  };
  if (d.backoff_max_ms < d.backoff_ms) return { ...d, backoff_max_ms: d.backoff_ms };
  return d;
}

// ------------------------------------------------------------------------------------------ masking

const MASK = '***';

/** Hide the password of a connection string or URL (`user:***@host`, `password=***`). */
export function maskSecrets(value: string): string {
  return value
    .replace(/(\/\/[^/:@\s]*:)[^@\s/]*@/g, `$1${MASK}@`)
    .replace(/(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)/gi, `$1${MASK}`);
}

/** Settings as shown to people and written to the audit log: no secret in clear. */
export function maskedSettings(config: PluginConfig): Record<string, unknown> {
  switch (config.kind) {
    case 'postgres':
      return { connection: maskConnection(config.settings.connection) };
    case 'http':
      return {
        endpoint: maskSecrets(config.settings.endpoint),
        headers: Object.fromEntries(Object.keys(config.settings.headers).map((k) => [k, MASK])),
      };
    default:
      return { ...config.settings };
  }
}

/** One line naming where a plugin delivers, secrets masked. */
export function describeTarget(config: PluginConfig): string {
  switch (config.kind) {
    case 'postgres':
      return maskConnection(config.settings.connection);
    case 'sqlite':
      return config.settings.path;
    case 'csv':
      return `${config.settings.output_dir}/<aggregate>.csv`;
    case 'tcp':
      return `${config.settings.host}:${config.settings.port}`;
    case 'http': {
      const names = Object.keys(config.settings.headers);
      return `POST ${maskSecrets(config.settings.endpoint)}${names.length ? ` (headers: ${names.map((n) => `${n}: ${MASK}`).join(', ')})` : ''}`;
    }
    case 'json':
      return `${config.settings.path}${config.settings.pretty ? ' (pretty)' : ' (JSON Lines)'}`;
    case 'log':
      return `log at ${config.settings.level}${config.settings.template ? `: ${config.settings.template}` : ''}`;
  }
}
