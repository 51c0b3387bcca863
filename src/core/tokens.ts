/**
 * Access tokens: long random secrets with a recognisable prefix, stored only as a SHA-256 hash (a
 * 256-bit random secret needs no slow hash). Each token belongs to one person (`group`, `user`) and may
 * expire (optionally sliding with `keep_alive`), carry a write allowance, be read-only, be limited to
 * some aggregates, and may read the audit log (`audit`). Pure: the store persists records and
 * decrements allowances atomically.
 */
import { hash, randomBytes } from 'node:crypto';
import { err, shown } from './errors.js';
import type { EventIssuer } from './event.js';
import { aggregateId, aggregateType, notNfc } from './names.js';

export const TOKEN_PREFIX = 'edbx_';
const TOKEN_RE = /^edbx_[A-Za-z0-9_-]{43}$/;

/**
 * The group of writes made on the host by the CLI without a token (with the OS user). Reserved: no
 * token is issued for it, so `local/<user>` in `issued_by` always means such a write.
 */
export const LOCAL_GROUP = 'local';

export type TokenStatus = 'active' | 'expired' | 'revoked' | 'exhausted';

export interface TokenRecord {
  /** Short identifying prefix of the token, safe to show (e.g. `edbx_Q2x9fA`). */
  readonly id: string;
  /** Hex SHA-256 of the full token. */
  readonly hash: string;
  readonly group: string;
  readonly user: string;
  readonly created_at: string;
  readonly created_by: { readonly group: string; readonly user: string };
  /** Seconds of validity (from creation, or from the last use with keep_alive); null = never expires. */
  readonly ttl_seconds: number | null;
  readonly expires_at: string | null;
  readonly keep_alive: boolean;
  /** Write allowance; null = unlimited. */
  readonly limit: number | null;
  readonly remaining: number | null;
  readonly revoked_at: string | null;
  readonly read_only: boolean;
  /** `type` or `type/id` patterns; empty = every aggregate. */
  readonly scopes: readonly string[];
  /**
   * May read the audit log (`token generate --audit`) without being an unrestricted admin: what its
   * scopes cover of it (see core/audit-scope.ts). Absent from records issued before the flag existed.
   */
  readonly audit?: boolean;
}

export interface NewToken {
  readonly token: string;
  readonly id: string;
  readonly hash: string;
}

/** A token's id: its short prefix, safe to show and to log (e.g. `edbx_Q2x9fA`). */
export const tokenIdOf = (token: string): string => token.slice(0, 11);

export function generateToken(): NewToken {
  const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
  return { token, id: tokenIdOf(token), hash: hashToken(token) };
}

/** Hex SHA-256 of a token (one-shot `crypto.hash`: a fraction of `createHash` on every request). */
export const hashToken = (token: string): string => hash('sha256', token, 'hex');

export const isTokenShaped = (token: string): boolean => TOKEN_RE.test(token);

/**
 * A token anywhere in a text, or any longer run of its characters after the prefix than an id has: a
 * value cut short to be shown (errors.ts `shown`) may end in part of a token.
 */
const TOKEN_IN_TEXT = /edbx_[A-Za-z0-9_-]{7,}/g;

/**
 * `text` with every token in it shown as its id only (`edbx_Q2x9fA…`), as everywhere else a token is
 * named. For what is echoed to a client or logged: a token sent by mistake in a query or path
 * (`?token=edbx_…`) must not come back in an error or reach the log.
 *
 * @example
 * redactTokens('"edbx_Q2x9fAbc…" is not a version'); // '"edbx_Q2x9fA…" is not a version'
 */
export const redactTokens = (text: string): string =>
  text.includes(TOKEN_PREFIX) ? text.replace(TOKEN_IN_TEXT, (t) => `${tokenIdOf(t)}…`) : text;

/** Parse `Authorization: Bearer <token>`; throws MISSING / MALFORMED. */
export function bearerToken(header: string | undefined): string {
  if (header === undefined || header.trim() === '') throw err('EDBX_ERR_TOKEN_MISSING');
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m || !isTokenShaped(m[1]!)) throw err('EDBX_ERR_TOKEN_MALFORMED');
  return m[1]!;
}

export function tokenStatus(t: TokenRecord, now: Date): TokenStatus {
  if (t.revoked_at !== null) return 'revoked';
  if (t.expires_at !== null && Date.parse(t.expires_at) <= now.getTime()) return 'expired';
  if (t.remaining !== null && t.remaining <= 0) return 'exhausted';
  return 'active';
}

export interface Access {
  readonly write: boolean;
  /** The aggregate touched, if any. */
  readonly aggregate?: { readonly type: string; readonly id: string };
  /** Token, schema and plugin management. */
  readonly admin?: boolean;
  /**
   * Reading the audit log: a token issued with `--audit`, or one that may administer (group `admin`,
   * no scopes, no limit).
   */
  readonly auditLog?: boolean;
  /**
   * A ledger proof of the event at `position`, of aggregate `type/id` (`auditEntry`: an entry of the
   * audit log). A scoped token may prove its own aggregates' events, and with `--audit` the audit log's.
   */
  readonly ledger?: {
    readonly position: number;
    readonly type: string;
    readonly id: string;
    readonly auditEntry: boolean;
  };
  /** The schema of this aggregate type: a scoped token reads only those of the types it may read. */
  readonly schemaOf?: string;
  /**
   * Appends: the write allowance is checked by the transaction against what it actually writes, so an
   * idempotent retry of events already appended (which writes nothing) is answered with the original
   * records even by a token whose allowance those events used up.
   */
  readonly allowanceChecked?: 'by-transaction';
}

/** What a change of tokens, schemas or plugins needs: an admin token that may write. */
export const ADMIN_WRITE: Access = { write: true, admin: true };

/** Whether a scope pattern (`type` or `type/id`) covers an aggregate. */
export function scopeCovers(scope: string, type: string, id: string): boolean {
  const slash = scope.indexOf('/');
  return slash < 0 ? scope === type : scope.slice(0, slash) === type && scope.slice(slash + 1) === id;
}

/** The aggregate type of a scope pattern (`type` or `type/id`). */
const scopeType = (scope: string): string => {
  const slash = scope.indexOf('/');
  return slash < 0 ? scope : scope.slice(0, slash);
};

/** Whether scopes let a token read some aggregate of a type (every type when there are none). */
export const scopesReachType = (scopes: readonly string[], type: string): boolean =>
  scopes.length === 0 || scopes.some((s) => scopeType(s) === type);

/**
 * Whether two sets of scopes share an aggregate (an empty set is every aggregate): `patient` and
 * `patient/p-1` do, `patient/p-1` and `patient/p-2` do not.
 */
export function scopesOverlap(a: readonly string[], b: readonly string[]): boolean {
  if (a.length === 0 || b.length === 0) return true;
  return a.some((x) =>
    b.some((y) => scopeType(x) === scopeType(y) && (x === scopeType(x) || y === scopeType(y) || x === y)),
  );
}

/** Whether a ledger proof of an event may be given to the token (see Access.ledger). */
function mayProve(t: TokenRecord, ledger: NonNullable<Access['ledger']>): boolean {
  if (t.scopes.length === 0) return true;
  if (ledger.auditEntry) return t.audit === true;
  return t.scopes.some((s) => scopeCovers(s, ledger.type, ledger.id));
}

/** Throws the coded error for the first rule the use breaks. */
export function authorize(t: TokenRecord, now: Date, access: Access): void {
  const status = tokenStatus(t, now);
  if (status === 'revoked') throw err('EDBX_ERR_TOKEN_REVOKED', { id: t.id });
  if (status === 'expired') throw err('EDBX_ERR_TOKEN_EXPIRED', { id: t.id, at: t.expires_at });
  // The audit log is also for a token issued with --audit; without it, only for who may administer.
  const admin = access.admin === true || (access.auditLog === true && t.audit !== true);
  const auditOnly = access.auditLog === true && access.admin !== true;
  if (admin && t.group !== 'admin')
    throw err('EDBX_ERR_GROUP_NOT_ALLOWED', { group: t.group, audit: auditOnly });
  // A restricted admin could issue itself an unrestricted token (or lock types outside its scopes).
  if (admin && (t.scopes.length > 0 || t.limit !== null)) {
    const limits = [t.scopes.length > 0 ? 'aggregate scopes' : '', t.limit !== null ? 'a write limit' : '']
      .filter(Boolean)
      .join(' and ');
    throw err('EDBX_ERR_ADMIN_TOKEN_RESTRICTED', { id: t.id, limits, audit: auditOnly });
  }
  if (access.write && t.read_only) throw err('EDBX_ERR_TOKEN_READ_ONLY', { id: t.id });
  if (access.write && status === 'exhausted' && access.allowanceChecked !== 'by-transaction')
    throw err('EDBX_ERR_TOKEN_EXHAUSTED', { id: t.id, limit: t.limit });
  if (access.aggregate && t.scopes.length > 0) {
    const { type, id } = access.aggregate;
    if (!t.scopes.some((s) => scopeCovers(s, type, id))) {
      throw err('EDBX_ERR_TOKEN_OUT_OF_SCOPE', { id: t.id, aggregate: `${type}/${id}` });
    }
  }
  // Never names the aggregate at that position: that would tell the token what it may not read.
  if (access.ledger && !mayProve(t, access.ledger)) {
    throw err('EDBX_ERR_TOKEN_OUT_OF_SCOPE', {
      id: t.id,
      aggregate: `ledger position ${access.ledger.position}: a token with aggregate scopes may prove only the events of those aggregates (and, issued with --audit, the audit log's entries)`,
    });
  }
  if (access.schemaOf !== undefined && !scopesReachType(t.scopes, access.schemaOf)) {
    throw err('EDBX_ERR_TOKEN_OUT_OF_SCOPE', { id: t.id, aggregate: `the schema of ${access.schemaOf}` });
  }
}

/**
 * Refuses a token that `admin` issues or refreshes (`made`, as it would be stored) if it would outlive
 * `admin`'s own expiry: without an expiry, with a later one, or sliding (`keep_alive` moves its expiry
 * past any bound with use). A temporary admin could otherwise refresh itself for 100 years or leave a
 * lasting admin token behind. An admin token without an expiry is not bound.
 *
 * @example
 * refuseOutliving(caller, next, now, 'refreshes'); // throws EDBX_ERR_TOKEN_OUTLIVES_ADMIN
 */
export function refuseOutliving(
  admin: TokenRecord,
  made: Pick<TokenRecord, 'id' | 'expires_at' | 'keep_alive'>,
  now: Date,
  action: 'issues' | 'refreshes',
): void {
  if (admin.expires_at === null) return;
  const until = Date.parse(admin.expires_at);
  if (made.expires_at !== null && !made.keep_alive && Date.parse(made.expires_at) <= until) return;
  const which = action === 'issues' || made.id === admin.id ? '' : ` (${made.id})`;
  const why = made.keep_alive
    ? 'would slide with use (--keep-alive)'
    : made.expires_at === null
      ? 'would never expire'
      : `would expire at ${made.expires_at}`;
  throw err('EDBX_ERR_TOKEN_OUTLIVES_ADMIN', {
    id: admin.id,
    at: admin.expires_at,
    action: `${action}${which}`,
    why,
    seconds: Math.max(0, Math.floor((until - now.getTime()) / 1000)),
  });
}

/**
 * Who writes with a token, as its events record it: the token's person and its id (never the secret or
 * its hash), so each event can be joined to the `token-generated` audit entry that says who issued it.
 */
export const issuerOf = (t: TokenRecord): EventIssuer => ({ group: t.group, user: t.user, token: t.id });

/** The record after one successful use: sliding expiry and, for writes, one less allowance. */
export function afterUse(t: TokenRecord, now: Date, wrote: number): TokenRecord {
  let next = t;
  if (t.keep_alive && t.ttl_seconds !== null) {
    next = { ...next, expires_at: new Date(now.getTime() + t.ttl_seconds * 1000).toISOString() };
  }
  if (wrote > 0 && t.remaining !== null) next = { ...next, remaining: t.remaining - wrote };
  return next;
}

/** What a listing may show: never the hash. */
export function describeToken(t: TokenRecord, now: Date) {
  return {
    id: t.id,
    group: t.group,
    user: t.user,
    status: tokenStatus(t, now),
    expires_at: t.expires_at,
    keep_alive: t.keep_alive,
    limit: t.limit,
    remaining: t.remaining,
    read_only: t.read_only,
    scopes: [...t.scopes],
    audit: t.audit === true,
    created_at: t.created_at,
    revoked_at: t.revoked_at,
  };
}

/**
 * Validate a `--aggregate type[/id]` scope: the type by the rule of aggregate types, the id by the rule
 * of aggregate ids. A scope no aggregate could ever match (`patient/p-001 `, with a trailing space)
 * would give a token that silently reaches nothing: it is refused instead.
 *
 * @example
 * parseScope('patient/p-001'); // 'patient/p-001'
 * parseScope('patient/p-001 '); // throws EDBX_ERR_INVALID_ARGUMENT: … is not an aggregate id …
 */
export function parseScope(value: string): string {
  const slash = value.indexOf('/');
  const type = slash < 0 ? value : value.slice(0, slash);
  const refuse = (reason: string) =>
    err('EDBX_ERR_INVALID_ARGUMENT', { name: 'aggregate scope', value, reason });
  if (!isValid(aggregateType, type))
    throw refuse(
      `use <type> or <type>/<id>; the type ${shown(type)} is not an aggregate type (1-64 characters of a-z, 0-9, '_' or '-')`,
    );
  if (slash < 0) return value;
  const id = value.slice(slash + 1);
  if (!isValid(aggregateId, id))
    throw refuse(
      `the id ${shown(id)} is not an aggregate id, so no aggregate could match it: use 1-128 visible characters without control or invisible characters, '/' or spaces at either end (not '.' or '..')`,
    );
  // The ids of new aggregates are in NFC: a scope spelled otherwise would look like one and match none.
  const nfc = notNfc(id, 'id');
  if (nfc !== undefined) throw refuse(`the id ${shown(id)}: ${nfc}`);
  return value;
}

const isValid = (check: (v: unknown) => unknown, v: string): boolean => {
  try {
    check(v);
    return true;
  } catch {
    return false;
  }
};
