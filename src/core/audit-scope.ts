/**
 * What of the audit log a token limited to some aggregates sees (`token generate --audit --aggregate`):
 * the entries about what its scopes cover, and those about the store as a whole. Pure.
 *
 * The log names things a scoped auditor may not read otherwise: other aggregates' ids, versions, roots
 * and archive comments, other types' schemas and column mappings, and the people, scopes and expiry of
 * tokens that can never reach its aggregates. Those entries are withheld; what could reach its
 * aggregates stays in view: every token whose scopes overlap its own (unscoped ones included), the
 * schemas of its types, and the store-wide entries (plugins, which are sent every event; key and
 * config changes; backups taken, which copy every aggregate, and restores from one; servers started
 * with schema enforcement other than the default, which applies to every aggregate). A withheld
 * entry is still counted by its version and leaf hash, so the log's tree can be recomputed and no
 * entry can be dropped unseen.
 */
import { scopeCovers, scopesOverlap, scopesReachType } from './tokens.js';

/** An audit log entry as far as its visibility goes. */
export interface AuditEntryFacts {
  readonly event_type: string;
  readonly payload: Readonly<Record<string, unknown>>;
}

/**
 * Whether a token with `scopes` (none: every aggregate) sees an audit log entry. `scopesOfToken` gives
 * the scopes of a token by its id (revocations and refreshes do not repeat them); an entry about a
 * token with no record is shown (a missing record is `audit verify`'s to report, not to hide).
 *
 * @example
 * auditEntryVisible(['patient/p-001'], { event_type: 'aggregate-archived', payload: { aggregate: 'patient/p-002' } }, () => undefined); // false
 */
export function auditEntryVisible(
  scopes: readonly string[],
  entry: AuditEntryFacts,
  scopesOfToken: (id: string) => readonly string[] | undefined,
): boolean {
  if (scopes.length === 0) return true;
  const p = entry.payload;
  // `aggregate` is `type/id` for archive, restore and snapshot entries, a type for schemas and mappings.
  const aggregate = typeof p.aggregate === 'string' ? p.aggregate : undefined;
  if (aggregate !== undefined) {
    const slash = aggregate.indexOf('/');
    if (slash < 0) return scopesReachType(scopes, aggregate);
    const type = aggregate.slice(0, slash);
    const id = aggregate.slice(slash + 1);
    return scopes.some((s) => scopeCovers(s, type, id));
  }
  if (typeof p.aggregate_type === 'string') return scopesReachType(scopes, p.aggregate_type);
  if (entry.event_type.startsWith('token-')) {
    // The record first, then the entry's `scope_list` (a JSON array); the comma-joined `scopes` of
    // entries older than it is the last resort, as an id may hold a comma.
    const theirs =
      (typeof p.token === 'string' ? scopesOfToken(p.token) : undefined) ??
      (entry.event_type === 'token-generated' ? loggedScopes(p) : undefined);
    return theirs === undefined || scopesOverlap(scopes, theirs);
  }
  return true;
}

/** The scopes a `token-generated` entry records, or undefined when it records none readable. */
function loggedScopes(p: Readonly<Record<string, unknown>>): string[] | undefined {
  if (typeof p.scope_list === 'string') {
    try {
      const list: unknown = JSON.parse(p.scope_list);
      if (Array.isArray(list) && list.every((x) => typeof x === 'string')) return list as string[];
    } catch {
      // Not a list: fall back to the comma-joined form.
    }
  }
  return typeof p.scopes === 'string' ? p.scopes.split(',').filter(Boolean) : undefined;
}
