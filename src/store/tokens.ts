/**
 * Token lifecycle on the store: generate, list, revoke, refresh (each atomic with its audit entry) and
 * authentication of a presented token. Writes charge allowances inside the append transaction
 * (EventStore.appendMany), so limits are exact under concurrency and failed writes cost nothing.
 */
import { err, isEventDbxError } from '../core/errors.js';
import type { EventRecord } from '../core/event.js';
import { wholeNumber } from '../core/names.js';
import {
  type Access,
  type TokenRecord,
  LOCAL_GROUP,
  afterUse,
  authorize,
  bearerToken,
  describeToken,
  generateToken,
  hashToken,
  parseScope,
  refuseOutliving,
  tokenStatus,
} from '../core/tokens.js';
import { prefixEnd } from '../storage/engine.js';
import { tokenProblemsById } from './audit-tokens.js';
import { openJson } from './codec.js';
import * as K from './keys.js';
import { Pace } from './pace.js';
import { AUDIT_ID, AUDIT_TYPE, type EventStore } from './store.js';
import type { WriteTx } from './tx.js';
import type { WriteContext } from './types.js';

const AUDIT: ReadonlyArray<readonly [string, string]> = [[AUDIT_TYPE, AUDIT_ID]];

export interface GenerateOptions {
  readonly group: string;
  readonly user: string;
  /** Seconds; validated here (numbers from HTTP, strings from the CLI). */
  readonly expiration?: unknown;
  /** Writes; validated here like `expiration`. */
  readonly limit?: unknown;
  readonly keepAlive?: boolean | undefined;
  readonly readOnly?: boolean | undefined;
  readonly scopes?: readonly string[] | undefined;
  /** May read the audit log (what its scopes cover of it) without being an unrestricted admin. */
  readonly audit?: boolean | undefined;
}

const NAME = /^[A-Za-z0-9._@-]{1,64}$/;

/** Upper bounds: an expiration must stay a valid date (100 years), a limit a safe integer. */
export const TOKEN_RANGES = {
  expiration: { max: 100 * 365 * 24 * 3600, unit: 'seconds' },
  limit: { max: Number.MAX_SAFE_INTEGER, unit: 'writes' },
} as const;

/** Validate an expiration or limit with one message for every bad value (CLI and HTTP alike). */
function positive(value: unknown, name: keyof typeof TOKEN_RANGES): number | undefined {
  if (value === undefined) return undefined;
  const n = wholeNumber(value);
  const { max, unit } = TOKEN_RANGES[name];
  if (n === undefined || n < 1 || n > max)
    throw err('EDBX_ERR_INVALID_ARGUMENT', {
      name,
      value,
      reason: `use a whole number of ${unit} from 1 to ${max}`,
    });
  return n;
}

/**
 * Refuses a token issued or refreshed with an admin token (`ctx.tokenHash`, as over HTTP) that would
 * outlive that admin token (core/tokens.ts `refuseOutliving`). The admin's record is read in the
 * transaction, so a concurrent refresh of it is seen. Host actions (CLI, no token) are not bound.
 */
function boundByAdmin(
  store: EventStore,
  tx: WriteTx,
  ctx: WriteContext,
  made: TokenRecord,
  action: 'issues' | 'refreshes',
): void {
  if (ctx.tokenHash === undefined) return;
  const admin = tx.token(ctx.tokenHash, store.tokens);
  if (!admin) throw err('EDBX_ERR_TOKEN_UNKNOWN');
  refuseOutliving(admin, made, store.env.now(), action);
}

/**
 * Issue a token. The full token is returned once; only its hash is stored. Its id (the first 11
 * characters, 36 random bits) names it in events, the audit log and `token revoke`, so a new token
 * never shares one with a token the store holds. `generate`: for tests.
 */
export async function createToken(
  store: EventStore,
  o: GenerateOptions,
  ctx: WriteContext,
  generate = generateToken,
) {
  for (const [flag, v] of [
    ['group', o.group],
    ['user', o.user],
  ] as const) {
    if (typeof v !== 'string' || !NAME.test(v)) {
      throw err('EDBX_ERR_INVALID_ARGUMENT', {
        name: flag,
        value: v,
        reason: 'use 1-64 characters of letters, digits, . _ @ -',
      });
    }
  }
  // A token of group `local` (in any case) would make its writes read as if made on the host.
  if (o.group.toLowerCase() === LOCAL_GROUP) throw err('EDBX_ERR_GROUP_RESERVED', { group: o.group });
  const ttl = positive(o.expiration, 'expiration');
  const limit = positive(o.limit, 'limit');
  if (o.keepAlive && ttl === undefined) {
    throw err('EDBX_ERR_INVALID_ARGUMENT', {
      name: 'keep-alive',
      value: true,
      reason: 'needs an expiration (seconds) to slide',
    });
  }
  const scopes = [...new Set((o.scopes ?? []).map(parseScope))];
  const taken = new Set([...store.tokens.values()].map((t) => t.id));
  let fresh = generate();
  while (taken.has(fresh.id)) fresh = generate();
  const now = store.env.now();
  const record: TokenRecord = {
    id: fresh.id,
    hash: fresh.hash,
    group: o.group,
    user: o.user,
    created_at: now.toISOString(),
    // The person who issued it; the audit entry below records the token they used as well.
    created_by: { group: ctx.issuedBy.group, user: ctx.issuedBy.user },
    ttl_seconds: ttl ?? null,
    expires_at: ttl === undefined ? null : new Date(now.getTime() + ttl * 1000).toISOString(),
    keep_alive: Boolean(o.keepAlive),
    limit: limit ?? null,
    remaining: limit ?? null,
    revoked_at: null,
    read_only: Boolean(o.readOnly),
    scopes,
    audit: Boolean(o.audit),
  };
  await store.exclusive(AUDIT, async (tx) => {
    boundByAdmin(store, tx, ctx, record, 'issues');
    tx.setToken(record);
    store.audit(tx, ctx, 'token-generated', {
      token: record.id,
      group: record.group,
      user: record.user,
      expires_at: record.expires_at ?? '',
      // With keep-alive the expiry slides by the same span from each use: expires_at alone is not the grant.
      keep_alive: String(record.keep_alive),
      limit: String(record.limit ?? ''),
      read_only: String(record.read_only),
      scopes: scopes.join(','),
      // The same, unambiguous (an id may hold a comma): what `audit verify` compares the record with.
      scope_list: JSON.stringify(scopes),
      audit: String(record.audit),
    });
  });
  return { token: fresh.token, ...describeToken(record, now) };
}

export interface TokenListOptions {
  /** Resume after this token: the `tokenPosition` of the last one seen. */
  readonly after?: string | undefined;
  readonly skip?: number;
  readonly take?: number;
  readonly signal?: AbortSignal | undefined;
}

const HASH = /^[0-9a-f]{64}$/;
const badPosition = (value: string) =>
  err('EDBX_ERR_INVALID_ARGUMENT', {
    name: 'cursor',
    value,
    reason: 'use the next_cursor of a previous page',
  });

/**
 * Where a listing stopped: the token's hash, sealed with the store's codec, so a cursor never shows a
 * hash (the listing itself shows none) and one made by hand is refused.
 */
export const tokenPosition = (store: EventStore, t: TokenRecord): string =>
  store.env.codec.seal(Buffer.from(t.hash, 'utf8')).toString('base64url');

function openPosition(store: EventStore, position: string): string {
  let hash: string;
  try {
    hash = store.env.codec.open(Buffer.from(position, 'base64url'), 'token list cursor').toString('utf8');
  } catch {
    throw badPosition(position);
  }
  if (!HASH.test(hash)) throw badPosition(position);
  return hash;
}

/**
 * Token records in key order (by hash, so not by creation), read from the K range: only the page is
 * read, the skipped keys are counted without their values. The record held in memory is returned
 * when there is one, since a keep-alive expiry slides in memory before it is written.
 */
export async function tokenRecords(store: EventStore, o: TokenListOptions = {}): Promise<TokenRecord[]> {
  const take = o.take ?? Number.MAX_SAFE_INTEGER;
  const out: TokenRecord[] = [];
  if (take <= 0) return out;
  const prefix = K.tokenPrefix();
  let from: { gt: Buffer } | { gte: Buffer } =
    o.after === undefined ? { gte: prefix } : { gt: K.tokenKey(openPosition(store, o.after)) };
  const lt = prefixEnd(prefix);
  let skip = o.skip ?? 0;
  if (skip > 0) {
    for await (const keys of store.engine.keyChunks('main', { ...from, lt, limit: skip, signal: o.signal })) {
      skip -= keys.length;
      from = { gt: keys.at(-1)! };
    }
    if (skip > 0) return out;
  }
  const pace = o.signal ? new Pace(o.signal) : undefined;
  for await (const [k, v] of store.engine.range('main', { ...from, lt, limit: take, signal: o.signal })) {
    out.push(
      store.tokens.get(k.subarray(1).toString('utf8')) ??
        openJson<TokenRecord>(store.env.codec, v, 'token record'),
    );
    if (pace?.due()) await pace.turn();
  }
  return out;
}

/** What `token list` and GET /v1/tokens show of each token: never the token or its hash. */
export async function listTokens(store: EventStore, o: TokenListOptions = {}) {
  const now = store.env.now();
  return (await tokenRecords(store, o)).map((t) => describeToken(t, now));
}

/** Find a token by its full value or its unique id prefix (as shown by `token list`). */
export function findToken(store: EventStore, value: string): TokenRecord {
  const byHash = store.tokens.get(hashToken(value));
  if (byHash) return byHash;
  const matches =
    value.length >= 8
      ? [...store.tokens.values()].filter((t) => t.id === value || value.startsWith(t.id))
      : [];
  if (matches.length !== 1) throw err('EDBX_ERR_TOKEN_NOT_FOUND', { token: value.slice(0, 11) });
  return matches[0]!;
}

/**
 * The scopes of each token by id, for showing a scoped token the audit entries about tokens that can
 * reach its aggregates. Two tokens sharing an id prefix (a 1 in 2^36 chance) get both their scopes.
 */
export function scopesById(store: EventStore): (id: string) => readonly string[] | undefined {
  const byId = new Map<string, string[]>();
  for (const t of store.tokens.values()) {
    const seen = byId.get(t.id);
    // An empty list is every aggregate: it stays empty whatever the other token's scopes are.
    if (seen === undefined) byId.set(t.id, [...t.scopes]);
    else if (seen.length > 0) byId.set(t.id, t.scopes.length === 0 ? [] : [...seen, ...t.scopes]);
  }
  return (id) => byId.get(id);
}

/**
 * Check the loaded token records against the audit log (what `audit verify` compares) and refuse each
 * one it does not vouch for: a record put back from before a refresh that cut its life or allowance
 * short, or before its revocation, or slipped in (pen-test finding 4). The server runs this once it
 * opened the store, before it listens: records change afterwards only with their audit entries. Returns
 * a line per refused token, or why the log could not be read (then nothing is refused: every token
 * would be, and writes are refused anyway while the log is damaged).
 */
export async function distrustTokens(store: EventStore): Promise<{ refused: string[]; unchecked?: string }> {
  const entries: EventRecord[] = [];
  try {
    if (await store.meta(AUDIT_TYPE, AUDIT_ID))
      for await (const chunk of store.scanEvents('main', AUDIT_TYPE, AUDIT_ID, {}))
        for (const e of chunk) if (e.event_type.startsWith('token-')) entries.push(e);
  } catch (e) {
    return { refused: [], unchecked: isEventDbxError(e) ? e.message : String(e) };
  }
  const problems = tokenProblemsById(store.tokens.values(), entries);
  const refused: string[] = [];
  for (const t of store.tokens.values()) {
    const found = problems.get(t.id);
    if (!found) continue;
    store.distrusted.add(t);
    refused.push(...found);
  }
  return { refused };
}

/** Revoke a token; revoking it again is refused (nothing changes, no second audit entry). */
export async function revokeToken(store: EventStore, value: string, ctx: WriteContext) {
  const t = findToken(store, value);
  return store.exclusive(AUDIT, async (tx) => {
    const current = tx.token(t.hash, store.tokens)!;
    if (current.revoked_at)
      throw err('EDBX_ERR_TOKEN_ALREADY_REVOKED', { id: current.id, at: current.revoked_at });
    const next: TokenRecord = { ...current, revoked_at: store.env.now().toISOString() };
    tx.setToken(next);
    store.audit(tx, ctx, 'token-revoked', { token: t.id, group: t.group, user: t.user });
    return describeToken(next, store.env.now());
  });
}

/** Extend the lifetime (from now) and/or the write allowance of a token, in place. */
export async function refreshToken(
  store: EventStore,
  value: string,
  o: { expiration?: unknown; limit?: unknown },
  ctx: WriteContext,
) {
  const t = findToken(store, value);
  const ttl = positive(o.expiration, 'expiration');
  const limit = positive(o.limit, 'limit');
  if (ttl === undefined && limit === undefined) {
    throw err('EDBX_ERR_USAGE', {
      reason: 'a token refresh needs a new expiration (seconds) and/or a new limit (writes)',
    });
  }
  return store.exclusive(AUDIT, async (tx) => {
    const current = tx.token(t.hash, store.tokens)!;
    // 409 about the target token: a 401 would say the caller's own token is bad.
    if (current.revoked_at)
      throw err('EDBX_ERR_TOKEN_ALREADY_REVOKED', { id: current.id, at: current.revoked_at });
    const now = store.env.now();
    if (ttl === undefined && tokenStatus(current, now) === 'expired')
      throw err('EDBX_ERR_TOKEN_EXPIRATION_REQUIRED', { id: current.id, at: current.expires_at });
    const next: TokenRecord = {
      ...current,
      ...(ttl === undefined
        ? {}
        : { ttl_seconds: ttl, expires_at: new Date(now.getTime() + ttl * 1000).toISOString() }),
      ...(limit === undefined ? {} : { limit, remaining: limit }),
    };
    boundByAdmin(store, tx, ctx, next, 'refreshes');
    tx.setToken(next);
    store.audit(tx, ctx, 'token-refreshed', {
      token: t.id,
      before: `expires_at=${current.expires_at ?? ''} remaining=${current.remaining ?? ''}`,
      after: `expires_at=${next.expires_at ?? ''} remaining=${next.remaining ?? ''}`,
      // What `audit verify` compares the record with: `after` does not tell a new limit from the
      // remaining writes, nor a keep-alive token's span.
      limit: String(next.limit ?? ''),
      ttl_seconds: String(next.ttl_seconds ?? ''),
    });
    return describeToken(next, now);
  });
}

/**
 * The token hash an `Authorization` header carries, remembered for the last headers seen: a client
 * sends the same header with every request, and each request is authenticated twice (before its body
 * is read, then for its precise access). Only well-formed headers are remembered, as hashes (the map's
 * keys are the headers themselves, in memory only); whether the token is known is asked every time.
 */
const headerHashes = new Map<string, string>();
const HEADER_HASHES = 1024;

function hashOfHeader(header: string | undefined): string {
  const known = header === undefined ? undefined : headerHashes.get(header);
  if (known !== undefined) return known;
  const hash = hashToken(bearerToken(header));
  // Full: start over (cheaper than an LRU, and a client's next request puts its header back).
  if (headerHashes.size >= HEADER_HASHES) headerHashes.clear();
  headerHashes.set(header!, hash);
  return hash;
}

/**
 * Authenticate an `Authorization` header for an access. Writes are re-checked and charged inside the
 * append transaction; this check gives reads and early refusals their precise error.
 */
export function authenticate(store: EventStore, header: string | undefined, access: Access): TokenRecord {
  const t = store.tokens.get(hashOfHeader(header));
  if (!t) throw err('EDBX_ERR_TOKEN_UNKNOWN');
  if (store.distrusted.has(t)) throw err('EDBX_ERR_TOKEN_DISTRUSTED', { id: t.id });
  const now = store.env.now();
  authorize(t, now, access);
  if (t.keep_alive) {
    // Each use slides the expiry, kept in memory; it becomes durable with the token's next append or
    // token change (a crash only shortens the lifetime back to its last durable value). A write is
    // authenticated before its body is read: what it then does (an admin's change of tokens, bound
    // by its expiry) sees the slide of this use.
    store.tokens.set(t.hash, afterUse(t, now, 0));
  }
  return t;
}
