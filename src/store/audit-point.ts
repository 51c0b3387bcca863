/**
 * The audit log and the records it vouches for as of one point in time, for `audit verify`. Each change
 * to those records (tokens, schemas, snapshot thresholds, plugin configurations and mappings, archive
 * states) commits together with its audit entry, so while the log's version stays the same none of them
 * changes. A check therefore takes the log's version and the tokens (held in memory) at a point no
 * commit lands in (EventStore.atRest), reads the stored records, and then asks the writer whether a
 * batch changing the log was committed, written or prepared meanwhile: none, and what it read is the
 * state at that version; one, and it tries again from a new point. Read the other way (the log, then
 * the records), every admin action landing in between looked like tampering: a revocation the log
 * does not record, a schema version it never wrote.
 *
 * Under a steady stream of admin actions the last try runs as an exclusive writer job, so a check always
 * ends: writers wait for that one read of the records, and otherwise only for a rest point (as for a
 * backup). Entries appended after the point are not the check's business: the next check covers them.
 */
import type { EventRecord } from '../core/event.js';
import type { TokenRecord } from '../core/tokens.js';
import { AUDIT_ID, AUDIT_TYPE, type EventStore } from './store.js';

/** Tries between rest points before the one that runs alone. */
const TRIES = 3;

/** The audit log up to one point, and the tokens as they were then. */
export interface AuditPoint {
  readonly log: readonly EventRecord[];
  readonly tokens: readonly TokenRecord[];
}

/** The log's version and the tokens, taken where no commit lands (they change together). */
interface Mark {
  readonly version: number;
  readonly tokens: readonly TokenRecord[];
}

const mark = (store: EventStore): Mark => ({
  version: store.auditVersion,
  tokens: [...store.tokens.values()],
});

/**
 * `check`'s answer for one point: it reads the stored records and compares them with the point it is
 * given (it must not write), and its answer is kept only from a try no audited change raced.
 *
 * @example
 * const state = await atOnePoint(store, ({ log, tokens }) => verifyAuditState(store, log, tokens));
 */
export async function atOnePoint<T>(
  store: EventStore,
  check: (point: AuditPoint) => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  // Read before the first point: entries never change once written, so a try reads only those
  // appended since, and its window stays short.
  let log = await store.auditLog({ signal });
  for (let tries = 1; tries <= TRIES; tries++) {
    const at = await store.atRest(() => mark(store));
    log = await upTo(store, log, at.version, signal);
    const answer = await check({ log, tokens: at.tokens });
    // No audited batch committed, written or prepared since the rest point: what was read is as of it.
    if (store.settledAuditVersion === at.version) return answer;
  }
  const alone = async (): Promise<T> => {
    const at = mark(store);
    return check({ log: await upTo(store, log, at.version, signal), tokens: at.tokens });
  };
  // A store that refuses writes lands no commit (and refuses exclusive jobs): nothing to wait for.
  return store.writeFailure ? alone() : store.exclusive([], alone);
}

/** `log` (the entries from 1) cut or extended to `version`. */
async function upTo(
  store: EventStore,
  log: EventRecord[],
  version: number,
  signal: AbortSignal | undefined,
): Promise<EventRecord[]> {
  if (log.length === version) return log;
  // Longer only when the first read saw a batch on disk whose commit was then not published.
  if (log.length > version) return log.slice(0, version);
  const tail = await store.readEvents('main', AUDIT_TYPE, AUDIT_ID, {
    fromVersion: log.length + 1,
    toVersion: version,
    signal,
  });
  return log.concat(tail);
}
