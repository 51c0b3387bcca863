/**
 * Access tokens: long random secrets with a recognisable prefix, stored only as a SHA-256 hash (a
 * 256-bit random secret needs no slow hash). Each token belongs to one person (`group`, `user`) and may
 * expire (optionally sliding with `keep_alive`), carry a write allowance, be read-only, and be limited
 * to some aggregates. Pure: the store persists records and decrements allowances atomically.
 */
import { hash, randomBytes } from 'node:crypto';
import { err } from './errors.js';
import type { EventIssuer } from './event.js';

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
   * Appends: the write allowance is checked by the transaction against what it actually writes, so an
   * idempotent retry of events already appended (which writes nothing) is answered with the original
   * records even by a token whose allowance those events used up.
   */
  readonly allowanceChecked?: 'by-transaction';
}

/** Whether a scope pattern (`type` or `type/id`) covers an aggregate. */
export function scopeCovers(scope: string, type: string, id: string): boolean {
  const slash = scope.indexOf('/');
  return slash < 0 ? scope === type : scope.slice(0, slash) === type && scope.slice(slash + 1) === id;
}

/** Throws the coded error for the first rule the use breaks. */
export function authorize(t: TokenRecord, now: Date, access: Access): void {
  const status = tokenStatus(t, now);
  if (status === 'revoked') throw err('EDBX_ERR_TOKEN_REVOKED', { id: t.id });
  if (status === 'expired') throw err('EDBX_ERR_TOKEN_EXPIRED', { id: t.id, at: t.expires_at });
  if (access.admin && t.group !== 'admin') throw err('EDBX_ERR_GROUP_NOT_ALLOWED', { group: t.group });
  // A restricted admin could issue itself an unrestricted token (or lock types outside its scopes).
  if (access.admin && (t.scopes.length > 0 || t.limit !== null)) {
    const limits = [t.scopes.length > 0 ? 'aggregate scopes' : '', t.limit !== null ? 'a write limit' : '']
      .filter(Boolean)
      .join(' and ');
    throw err('EDBX_ERR_ADMIN_TOKEN_RESTRICTED', { id: t.id, limits });
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
    created_at: t.created_at,
    revoked_at: t.revoked_at,
  };
}

/** Validate a `--aggregate type[/id]` scope. */
export function parseScope(value: string): string {
  const m = /^([a-z0-9_-]{1,64})(?:\/([^/\u0000-\u001f\u007f]{1,128}))?$/.exec(value);
  if (!m) {
    throw err('EDBX_ERR_INVALID_ARGUMENT', {
      name: '--aggregate scope',
      value,
      reason: 'use <type> or <type>/<id>',
    });
  }
  return value;
}
