/**
 * Tokens against the audit log (for `audit verify`, see audit-state.ts). Every change to a token record
 * commits with its audit entry, so each token the log generated must be stored, be revoked exactly as
 * the log says, hold the grant its `token-generated` entry records, and hold the expiry and write
 * allowance its latest `token-generated` / `token-refreshed` entry left it with; no token may be stored
 * that the log never generated.
 *
 * A token's expiry without keep-alive changes only by a refresh, so it must be the one logged; a
 * keep-alive expiry slides with each use, which is not logged, so its span (`ttl_seconds`) is compared
 * instead. The limit changes only by a refresh; the remaining writes only go down (one per write), so
 * they may be no more than the latest entry left. A record put back from before a refresh that cut a
 * token's life or allowance short (pen-test finding 4) is reported. Fields an older entry did not log
 * are not compared.
 */
import type { EventRecord } from '../core/event.js';
import type { TokenRecord } from '../core/tokens.js';

/**
 * What a token may do, as generation fixed it: nothing changes these afterwards (`token refresh` moves
 * only the expiry and the write allowance), so a stored record that differs was changed behind the log.
 */
interface Grant {
  readonly group?: string;
  readonly user?: string;
  readonly keep_alive?: boolean;
  readonly read_only?: boolean;
  readonly scopes?: string;
  readonly audit?: boolean;
}

/** A token's expiry and allowance as its latest entry left them (undefined: the entry does not say). */
interface Lifetime {
  readonly expires_at?: string | null;
  /** Seconds of validity; from a generation entry, derived from the record's creation instead. */
  readonly ttl_seconds?: number | null;
  readonly limit?: number | null;
  readonly remaining?: number | null;
  readonly generated: boolean;
}

/** What the log says about tokens, by id. */
interface LoggedTokens {
  readonly generated: Map<string, Grant>;
  readonly revoked: Set<string>;
  readonly lifetimes: Map<string, Lifetime>;
}

const flag = (v: string | undefined) => (v === undefined ? undefined : v === 'true');

/** A logged count or span: '' is none (null), undefined is not logged. */
const count = (v: string | undefined) => (v === undefined ? undefined : v === '' ? null : Number(v));

/** The grant an entry records; each field logged later than the entry was written is undefined. */
const grantOf = (p: Readonly<Record<string, string>>): Grant => ({
  group: p.group,
  user: p.user,
  keep_alive: flag(p.keep_alive),
  read_only: flag(p.read_only),
  // `scope_list` (a JSON array) where the entry has it: the comma-joined `scopes` cannot tell a scope
  // `patient/a,b` from the two scopes `patient/a` and `b`.
  scopes: p.scope_list ?? p.scopes,
  audit: flag(p.audit),
});

/** `after` of a `token-refreshed` entry, as refreshToken writes it (since the first version). */
const AFTER = /^expires_at=(\S*) remaining=(\S*)$/;

function refreshed(p: Readonly<Record<string, string>>): Lifetime {
  const m = AFTER.exec(p.after ?? '');
  if (!m) return { generated: false };
  return {
    expires_at: m[1] || null,
    remaining: count(m[2]),
    // Logged since pen-test finding 4; an older entry does not say whether it set a new limit.
    limit: count(p.limit),
    ttl_seconds: count(p.ttl_seconds),
    generated: false,
  };
}

function readTokenLog(log: readonly EventRecord[]): LoggedTokens {
  const out: LoggedTokens = { generated: new Map(), revoked: new Set(), lifetimes: new Map() };
  for (const e of log) {
    const p = e.payload;
    if (!p.token) continue;
    if (e.event_type === 'token-generated') {
      out.generated.set(p.token, grantOf(p));
      const limit = count(p.limit);
      out.lifetimes.set(p.token, {
        expires_at: p.expires_at === undefined ? undefined : p.expires_at || null,
        limit,
        remaining: limit,
        generated: true,
      });
    } else if (e.event_type === 'token-refreshed') out.lifetimes.set(p.token, refreshed(p));
    else if (e.event_type === 'token-revoked') out.revoked.add(p.token);
  }
  return out;
}

const shownGrant: { [K in keyof Grant]-?: (v: NonNullable<Grant[K]>) => string } = {
  group: (v) => `group ${v}`,
  user: (v) => `user ${v}`,
  keep_alive: (v) => `keep-alive ${v ? 'on' : 'off'}`,
  read_only: (v) => (v ? 'read-only' : 'read-write'),
  scopes: (v) => (v === '' || v === '[]' ? 'every aggregate' : `scopes ${v}`),
  audit: (v) => `audit log ${v ? 'readable' : 'not readable'}`,
};

function grantProblems(id: string, t: TokenRecord, logged: Grant, problems: string[]): void {
  const stored = grantOf({
    group: t.group,
    user: t.user,
    keep_alive: String(t.keep_alive),
    read_only: String(t.read_only),
    // In the form the entry logged them (a comma-joined list never starts with `[`).
    scopes: logged.scopes?.startsWith('[') ? JSON.stringify(t.scopes) : t.scopes.join(','),
    audit: String(t.audit ?? false),
  });
  // Entries written before a field was logged are not compared on it.
  for (const key of Object.keys(shownGrant) as Array<keyof Grant>) {
    const was = logged[key];
    const is = stored[key]!;
    if (was === undefined || was === is) continue;
    const show = shownGrant[key] as (v: unknown) => string;
    problems.push(`token ${id}: ${show(is)}, the audit log records ${show(was)}`);
  }
}

const expiry = (v: string | null) => (v === null ? 'no expiry' : `expiry ${v}`);
const span = (v: number | null) => (v === null ? 'no expiry' : `keep-alive span ${v} seconds`);
const limitOf = (v: number | null) => (v === null ? 'no write limit' : `a limit of ${v} writes`);

function lifetimeProblems(id: string, t: TokenRecord, keepAlive: boolean, l: Lifetime, problems: string[]) {
  if (!keepAlive && l.expires_at !== undefined && t.expires_at !== l.expires_at)
    problems.push(`token ${id}: ${expiry(t.expires_at)}, the audit log records ${expiry(l.expires_at)}`);
  if (keepAlive) {
    // A generation entry's expiry is the record's creation plus the span (one clock reading).
    const ttl =
      l.generated && l.expires_at !== undefined
        ? l.expires_at === null
          ? null
          : (Date.parse(l.expires_at) - Date.parse(t.created_at)) / 1000
        : l.ttl_seconds;
    if (ttl !== undefined && t.ttl_seconds !== ttl)
      problems.push(`token ${id}: ${span(t.ttl_seconds)}, the audit log records ${span(ttl)}`);
  }
  if (l.limit !== undefined && t.limit !== l.limit)
    problems.push(`token ${id}: ${limitOf(t.limit)}, the audit log records ${limitOf(l.limit)}`);
  else if (
    l.remaining !== undefined &&
    l.remaining !== null &&
    (t.remaining === null || t.remaining > l.remaining)
  )
    problems.push(
      `token ${id}: ${t.remaining ?? 'unlimited'} writes left, the audit log records ${l.remaining} (writes only lower it)`,
    );
}

/**
 * What is wrong with each stored token, by token id (lines as `audit verify` shows them); a token the
 * log generated but the store lacks is keyed by its id too.
 */
export function tokenProblemsById(
  held: Iterable<TokenRecord>,
  log: readonly EventRecord[],
): Map<string, string[]> {
  const { generated, revoked, lifetimes } = readTokenLog(log);
  const out = new Map<string, string[]>();
  const tokens = new Map([...held].map((t) => [t.id, t]));
  for (const [id, logged] of generated) {
    const problems: string[] = [];
    const t = tokens.get(id);
    if (!t) problems.push(`token ${id}: missing, the audit log records its generation`);
    else {
      if (revoked.has(id) && t.revoked_at === null)
        problems.push(`token ${id}: active, the audit log records its revocation`);
      else if (!revoked.has(id) && t.revoked_at !== null)
        problems.push(`token ${id}: revoked, the audit log records no revocation`);
      grantProblems(id, t, logged, problems);
      lifetimeProblems(id, t, logged.keep_alive ?? t.keep_alive, lifetimes.get(id)!, problems);
    }
    if (problems.length > 0) out.set(id, problems);
  }
  for (const id of tokens.keys())
    if (!generated.has(id))
      out.set(id, [`token ${id}: stored but the audit log never recorded its generation`]);
  return out;
}

/** One line per token that is not what the audit log says it is. */
export function verifyTokenState(held: Iterable<TokenRecord>, log: readonly EventRecord[]): string[] {
  return [...tokenProblemsById(held, log).values()].flat();
}
