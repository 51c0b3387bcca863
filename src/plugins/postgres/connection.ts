/**
 * PostgreSQL connection strings, both forms libpq takes: a URL (`postgres://user:pass@host:5432/db`)
 * and key=value pairs (`host=db port=5432 user=bob password='a b' dbname=app`). Parsing is strict: a
 * string that cannot be read one way only (a password with a raw space, `@`, `/`, `?` or `#`) is
 * refused, since the driver would guess and the masked form could show part of the secret. Errors never
 * quote the string (it may hold a password). Pure: no I/O.
 */
import { err } from '../../core/errors.js';

const invalid = (reason: string) => err('EDBX_ERR_PLUGIN_CONFIG_INVALID', { plugin: 'postgres', reason });

const MASK = '***';
const URL_SCHEME = /^postgres(?:ql)?:\/\//i;
/** RFC 3986 userinfo: unreserved, sub-delims, ':' and percent-escapes. */
const USERINFO = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=:]|%[0-9A-Fa-f]{2})*$/;
const REG_NAME = /^(?:[A-Za-z0-9\-._~]|%[0-9A-Fa-f]{2})*$/;
const ENCODE_HINT =
  'percent-encode the user name and password (space → %20, @ → %40, / → %2F, ? → %3F, # → %23, % → %25), ' +
  'e.g. postgres://bob:p%40ss%20word@db:5432/app';

/** The keywords accepted in key=value strings (what the driver can use). */
export const KEYWORDS = [
  'host',
  'hostaddr',
  'port',
  'dbname',
  'user',
  'password',
  'sslmode',
  'application_name',
  'options',
  'connect_timeout',
] as const;
type Keyword = (typeof KEYWORDS)[number];

/** Query parameters (URL) whose values are secrets. */
const SECRET_PARAM = /pass|secret|token|key/i;

interface ParsedUrl {
  readonly form: 'url';
  readonly scheme: string;
  readonly user: string;
  readonly hasPassword: boolean;
  readonly hostport: string;
  /** Path, query and fragment as given (validated). */
  readonly rest: string;
}
interface ParsedPairs {
  readonly form: 'pairs';
  readonly pairs: ReadonlyArray<readonly [Keyword, string]>;
}
export type ParsedConnection = ParsedUrl | ParsedPairs;

function checkPort(port: string): void {
  const n = /^\d{1,5}$/.test(port) ? Number(port) : NaN;
  if (!(n >= 1 && n <= 65535))
    throw invalid(`--connection: port ${JSON.stringify(port)} is not a port: use a number from 1 to 65535`);
}

/** The sslmode values the driver knows; it reads any other as "verify the certificate", silently. */
const SSL_MODES = ['disable', 'prefer', 'require', 'verify-ca', 'verify-full', 'no-verify'];

function checkSslMode(mode: string): void {
  if (!SSL_MODES.includes(mode))
    throw invalid(`--connection: sslmode ${JSON.stringify(mode)} is not known: use ${SSL_MODES.join(', ')}`);
}

function parseUrl(s: string): ParsedUrl {
  const scheme = s.slice(0, s.indexOf('://'));
  const afterScheme = s.slice(scheme.length + 3);
  const end = afterScheme.search(/[/?#]/);
  const authority = end < 0 ? afterScheme : afterScheme.slice(0, end);
  const rest = end < 0 ? '' : afterScheme.slice(end);
  // A raw space, '@' or a delimiter inside the password makes the string readable more than one way.
  if (/\s/.test(s) || authority.split('@').length > 2 || rest.includes('@'))
    throw invalid(`--connection cannot be read unambiguously: ${ENCODE_HINT}`);
  const at = authority.lastIndexOf('@');
  const userinfo = at < 0 ? '' : authority.slice(0, at);
  const hostport = authority.slice(at + 1);
  if (!USERINFO.test(userinfo)) throw invalid(`--connection cannot be read unambiguously: ${ENCODE_HINT}`);
  const colon = userinfo.indexOf(':');
  const user = colon < 0 ? userinfo : userinfo.slice(0, colon);
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]]*)(?::(.*))?$/.exec(hostport);
  if (!m || !(m[1]!.startsWith('[') || REG_NAME.test(m[1]!)))
    throw invalid(
      `--connection: host ${JSON.stringify(hostport)} is not a host name: use host or host:port, e.g. db:5432`,
    );
  if (m[2] !== undefined) checkPort(m[2]);
  try {
    new URL(s);
    decodeURIComponent(userinfo);
    decodeURIComponent(rest.split('#')[0]!);
  } catch {
    throw invalid(`--connection cannot be read unambiguously: ${ENCODE_HINT}`);
  }
  const query = rest.split('#')[0]!.split('?')[1];
  for (const mode of new URLSearchParams(query ?? '').getAll('sslmode')) checkSslMode(mode);
  return { form: 'url', scheme, user, hasPassword: colon >= 0, hostport, rest };
}

/** libpq's key=value syntax: `key = value` separated by spaces; values quoted with '...' (\' and \\ escapes). */
function parsePairs(s: string): ParsedPairs {
  const pairs: Array<readonly [Keyword, string]> = [];
  let i = 0;
  const space = () => {
    while (i < s.length && /\s/.test(s[i]!)) i++;
  };
  for (space(); i < s.length; space()) {
    const k = /^[A-Za-z_]+/.exec(s.slice(i))?.[0] ?? '';
    i += k.length;
    space();
    if (!k || s[i] !== '=')
      throw invalid(
        "--connection: use key=value pairs separated by spaces (quote values with spaces: password='a b'), or a URL",
      );
    if (!(KEYWORDS as readonly string[]).includes(k))
      throw invalid(`--connection: unknown keyword ${JSON.stringify(k)}: use ${KEYWORDS.join(', ')}`);
    i++;
    space();
    let value = '';
    if (s[i] === "'") {
      i++;
      for (;;) {
        if (i >= s.length) throw invalid(`--connection: the quoted value of ${k} has no closing quote`);
        const c = s[i++]!;
        if (c === "'") break;
        value += c === '\\' && i < s.length ? s[i++]! : c;
      }
    } else {
      while (i < s.length && !/\s/.test(s[i]!)) {
        const c = s[i++]!;
        value += c === '\\' && i < s.length ? s[i++]! : c;
      }
    }
    if (k === 'port') checkPort(value);
    if (k === 'sslmode') checkSslMode(value);
    pairs.push([k as Keyword, value]);
  }
  if (pairs.length === 0) throw invalid('--connection is required');
  return { form: 'pairs', pairs };
}

/** Parse (and so validate) a connection string; throws a coded error that never quotes the string. */
export function parseConnection(s: string): ParsedConnection {
  if (URL_SCHEME.test(s)) return parseUrl(s);
  if (/^[A-Za-z_]+\s*=/.test(s.trim())) return parsePairs(s);
  throw invalid(
    "--connection: use a URL (postgres://user:pass@host:5432/db) or key=value pairs (host=db port=5432 user=bob password='…' dbname=app)",
  );
}

const enc = encodeURIComponent;

/**
 * The connection string the driver reads: URLs as given, key=value pairs as the equivalent URL (the
 * driver's own parser would take them for a relative URL).
 */
export function driverConnectionString(s: string): string {
  const c = parseConnection(s);
  if (c.form === 'url') return s;
  const v = Object.fromEntries(c.pairs) as Partial<Record<Keyword, string>>;
  const host = v.hostaddr ?? v.host ?? '';
  const query = new URLSearchParams();
  // A socket directory goes in the query (the driver's way of saying "host=/run/postgresql").
  if (host.startsWith('/')) query.set('host', host);
  for (const k of ['sslmode', 'application_name', 'options', 'connect_timeout'] as const)
    if (v[k] !== undefined) query.set(k, v[k]);
  const auth =
    v.user !== undefined || v.password !== undefined
      ? `${enc(v.user ?? '')}${v.password !== undefined ? `:${enc(v.password)}` : ''}@`
      : '';
  const hostName = host.startsWith('/') ? '' : host.includes(':') ? `[${host}]` : enc(host);
  const port = v.port !== undefined ? `:${v.port}` : '';
  const q = query.toString();
  return `postgres://${auth}${hostName}${port}/${enc(v.dbname ?? '')}${q ? `?${q}` : ''}`;
}

/** Query string with the values of secret parameters (or of all, `all`) masked. */
export function maskQuery(query: string, all: boolean): string {
  if (!query) return '';
  return query
    .split('&')
    .map((p) => {
      const eq = p.indexOf('=');
      if (eq < 0) return p;
      const name = p.slice(0, eq);
      return all || SECRET_PARAM.test(name) ? `${name}=${MASK}` : p;
    })
    .join('&');
}

/** The string as shown to people and written to the audit log. Never the raw string of one that does not parse. */
export function maskConnection(s: string): string {
  let c: ParsedConnection;
  try {
    c = parseConnection(s);
  } catch {
    return `${MASK} (unreadable connection string)`;
  }
  if (c.form === 'pairs') {
    return c.pairs
      .map(([k, v]) =>
        k === 'password'
          ? `${k}=${MASK}`
          : `${k}=${/[\s'\\]/.test(v) || v === '' ? `'${v.replace(/[\\']/g, '\\$&')}'` : v}`,
      )
      .join(' ');
  }
  const hash = c.rest.indexOf('#');
  const noFragment = hash < 0 ? c.rest : c.rest.slice(0, hash);
  const q = noFragment.indexOf('?');
  const pathPart = q < 0 ? noFragment : noFragment.slice(0, q);
  const query = q < 0 ? '' : `?${maskQuery(noFragment.slice(q + 1), false)}`;
  const userinfo = c.user || c.hasPassword ? `${c.user}${c.hasPassword ? `:${MASK}` : ''}@` : '';
  return `${c.scheme}://${userinfo}${c.hostport}${pathPart}${query}`;
}
