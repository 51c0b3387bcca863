/**
 * Plugin settings: validation of what the CLI (or an API client) gives, the retry options, and the
 * masked form shown by `plugin list` and written to the audit log. Secrets (passwords in connection
 * strings, header values) never leave this module unmasked except into the sealed config record.
 */
import { isIP } from 'node:net';
import path from 'node:path';
import { err } from '../core/errors.js';
import { wholeNumber } from '../core/names.js';
import { maskConnection, maskQuery, parseConnection } from './postgres/connection.js';
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
  TEMPLATE_PLACEHOLDERS,
} from './types.js';

/** Input of a configure call (CLI flags, snake_case). Only the kind's own settings are read. */
export interface PluginInput {
  readonly connection?: unknown;
  readonly path?: unknown;
  readonly output_dir?: unknown;
  readonly host?: unknown;
  readonly port?: unknown;
  readonly endpoint?: unknown;
  /** `KEY=VALUE` strings (replace the set), or false to remove every header. */
  readonly headers?: unknown;
  /** Keep the headers when `endpoint` moves to another origin (by default they are dropped). */
  readonly keep_headers?: unknown;
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

const filePath = (plugin: string, flag: string, v: unknown): string => {
  if (typeof v === 'string' && v.trim() === '')
    throw invalid(plugin, `${flag} ${JSON.stringify(v)} is empty: give a path, e.g. ./out`);
  return path.resolve(text(plugin, flag, v));
};

/** A host name (RFC 1123 labels) or an IP address: no scheme, port, path or spaces. */
function hostName(plugin: string, flag: string, v: unknown): string {
  const host = text(plugin, flag, v);
  const label = '[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?';
  if (isIP(host) === 0 && !(host.length <= 253 && new RegExp(`^${label}(?:\\.${label})*\\.?$`).test(host)))
    throw invalid(
      plugin,
      `${flag} ${JSON.stringify(host)} is not a host name: use a name or an IP address such as collector.internal or 10.0.0.5 (no scheme, port or path)`,
    );
  return host;
}

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

/** No `--header` and no `--no-header`: the previous headers are kept (or dropped, see droppedHeaders). */
const headersOmitted = (i: PluginInput): boolean =>
  i.headers === undefined || (Array.isArray(i.headers) && i.headers.length === 0);

/** Same scheme, host and port (`URL.origin`, default ports included); an unparsable URL is another origin. */
function sameOrigin(a: string, b: string): boolean {
  try {
    return new URL(a).origin === new URL(b).origin;
  } catch {
    return false;
  }
}

/**
 * The names of the previous HTTP headers that `buildSettings` dropped because the endpoint moved to
 * another origin without `--header`, `--no-header` or `--keep-headers` (empty otherwise), so the
 * caller can say so and audit it. Names only: the values may be secrets.
 */
export function droppedHeaders(
  kind: PluginKind,
  i: PluginInput,
  previous: PluginConfig | undefined,
  next: SettingsByKind[PluginKind],
): string[] {
  if (kind !== 'http' || previous?.kind !== 'http' || !headersOmitted(i)) return [];
  const kept = (next as SettingsByKind['http']).headers;
  return Object.keys(previous.settings.headers).filter((name) => !(name in kept));
}

/** A flag the input omits: the previous value when there is one, else the flag is required. */
function kept<T>(plugin: string, flag: string, previous: T | undefined): T {
  // A new plugin without its target is a malformed command line, like any missing required flag.
  if (previous === undefined)
    throw err('EDBX_ERR_USAGE', {
      reason: `required option '${flag}' not specified (run eventdbx plugin ${plugin} --help for usage)`,
    });
  return previous;
}

/**
 * The kind's settings from the input; a setting the input omits keeps its previous value (`previous`,
 * the plugin's current settings), so re-running a command with only `--disable` or `--timeout` changes
 * nothing else. One exception: HTTP headers are dropped when `--endpoint` moves to another origin,
 * unless `keep_headers` (see droppedHeaders). Throws naming the missing or malformed flag.
 */
export function buildSettings<K extends PluginKind>(
  kind: K,
  i: PluginInput,
  previous?: SettingsByKind[K],
): SettingsByKind[K] {
  const given = (v: unknown) => v !== undefined;
  const s: { [P in PluginKind]: (prev: SettingsByKind[P] | undefined) => SettingsByKind[P] } = {
    postgres: (prev) => {
      if (!given(i.connection)) return { connection: kept('postgres', '--connection', prev?.connection) };
      const connection = text('postgres', '--connection', i.connection);
      parseConnection(connection);
      return { connection };
    },
    sqlite: (prev) => ({
      path: given(i.path) ? filePath('sqlite', '--path', i.path) : kept('sqlite', '--path', prev?.path),
    }),
    csv: (prev) => ({
      output_dir: given(i.output_dir)
        ? filePath('csv', '--output-dir', i.output_dir)
        : kept('csv', '--output-dir', prev?.output_dir),
    }),
    tcp: (prev) => ({
      host: given(i.host) ? hostName('tcp', '--host', i.host) : kept('tcp', '--host', prev?.host),
      port: given(i.port) ? number('tcp', '--port', i.port, 1, 65535) : kept('tcp', '--port', prev?.port),
    }),
    http: (prev) => {
      let endpoint: string;
      if (given(i.endpoint)) {
        endpoint = text('http', '--endpoint', i.endpoint);
        let url: URL;
        try {
          url = new URL(endpoint);
        } catch {
          throw invalid('http', '--endpoint: use an absolute http:// or https:// URL');
        }
        if (url.protocol !== 'http:' && url.protocol !== 'https:')
          throw invalid('http', '--endpoint: use an absolute http:// or https:// URL');
      } else endpoint = kept('http', '--endpoint', prev?.endpoint);
      // Headers given replace the set; none given keep it; `--no-header` (false) removes them all.
      const h = i.headers;
      const keep = i.keep_headers === true || i.keep_headers === 'true';
      // Alone it would change nothing, yet be taken (and audited) as a change.
      if (keep && !given(i.endpoint))
        throw invalid(
          'http',
          '--keep-headers goes with --endpoint: it keeps the headers when the endpoint moves',
        );
      if (keep && !headersOmitted(i))
        throw invalid(
          'http',
          h === false || h === 'false'
            ? '--keep-headers keeps the headers and --no-header removes them: give one of them'
            : '--keep-headers keeps the previous headers and --header replaces them: give one of them',
        );
      if (h === false || h === 'false') return { endpoint, headers: {} };
      if (!headersOmitted(i)) return { endpoint, headers: headers(h) };
      // Headers are often the receiver's credentials (`Authorization`): another receiver does not get
      // them unless asked (`--keep-headers`). A path or query change on the same origin keeps them.
      const moved = prev !== undefined && !sameOrigin(prev.endpoint, endpoint);
      return { endpoint, headers: moved && !keep ? {} : (prev?.headers ?? {}) };
    },
    json: (prev) => ({
      path: given(i.path) ? filePath('json', '--path', i.path) : kept('json', '--path', prev?.path),
      pretty: given(i.pretty) ? i.pretty === true || i.pretty === 'true' : (prev?.pretty ?? false),
    }),
    log: (prev) => {
      let level: LogLevel;
      if (given(i.level)) {
        if (typeof i.level !== 'string' || !(LOG_LEVELS as readonly string[]).includes(i.level))
          throw invalid('log', `--level ${JSON.stringify(i.level)}: use one of ${LOG_LEVELS.join(', ')}`);
        level = i.level as LogLevel;
      } else level = kept('log', '--level', prev?.level);
      // `--no-template` (false) goes back to the default line.
      if (i.template === false || i.template === 'false') return { level };
      if (i.template === undefined)
        return prev?.template === undefined ? { level } : { level, template: prev.template };
      const template = text('log', '--template', i.template);
      if (template.length > 1000) throw invalid('log', '--template: use at most 1000 characters');
      const unknown = [...template.matchAll(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g)]
        .map((m) => m[1]!)
        .find((k) => !(TEMPLATE_PLACEHOLDERS as readonly string[]).includes(k));
      if (unknown !== undefined)
        throw invalid(
          'log',
          `--template: unknown placeholder {${unknown}}: use ${TEMPLATE_PLACEHOLDERS.map((k) => `{${k}}`).join(', ')}`,
        );
      return { level, template };
    },
  };
  return (s[kind] as (prev: SettingsByKind[K] | undefined) => SettingsByKind[K])(previous);
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
  if (d.backoff_max_ms < d.backoff_ms)
    throw invalid(
      kind,
      `--backoff ${d.backoff_ms} is longer than --backoff-max ${d.backoff_max_ms}: lower --backoff or raise --backoff-max`,
    );
  return d;
}

// ------------------------------------------------------------------------------------------ masking

const MASK = '***';

/**
 * An HTTP endpoint as shown: the password of its user info and the value of every query parameter
 * masked (`?token=***`), since either may be a credential. One that does not parse is hidden whole.
 */
export function maskUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return MASK;
  }
  const user = url.username || url.password ? `${url.username}${url.password ? `:${MASK}` : ''}@` : '';
  const query = url.search ? `?${maskQuery(url.search.slice(1), true)}` : '';
  return `${url.protocol}//${user}${url.host}${url.pathname}${query}`;
}

/** Hide the secrets of a PostgreSQL connection string or a URL; never returns an unparsable string as is. */
export function maskSecrets(value: string): string {
  try {
    parseConnection(value);
    return maskConnection(value);
  } catch {
    return maskUrl(value);
  }
}

/** Settings as shown to people and written to the audit log: no secret in clear. */
export function maskedSettings(config: PluginConfig): Record<string, unknown> {
  switch (config.kind) {
    case 'postgres':
      return { connection: maskConnection(config.settings.connection) };
    case 'http':
      return {
        endpoint: maskUrl(config.settings.endpoint),
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
      return `POST ${maskUrl(config.settings.endpoint)}${names.length ? ` (headers: ${names.map((n) => `${n}: ${MASK}`).join(', ')})` : ''}`;
    }
    case 'json':
      return `${config.settings.path}${config.settings.pretty ? ' (pretty)' : ' (JSON Lines)'}`;
    case 'log':
      return `log at ${config.settings.level}${config.settings.template ? `: ${config.settings.template}` : ''}`;
  }
}
