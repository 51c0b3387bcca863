/**
 * Schemas, tokens, archive states, snapshot thresholds and plugin configurations live outside the
 * event trees; the audit log (a Merkle-verified aggregate) records every change to them. So the stored
 * records must be exactly what the log says they became: a schema rolled back, swapped or rewritten, a
 * revocation undone, an archived aggregate put back live, a threshold edited, a removed plugin put
 * back, a record slipped in or removed — with write access to the data dir but not the keys — shows
 * up here.
 *
 * Records are read from the engine, not from what the store holds in memory: a running server loaded
 * them before anyone could edit the files.
 *
 * Checked: every stored schema record against its key; each schema's current version against the last
 * version the log recorded for it, and each version's content against the digest its log entry
 * carries (entries written before digests existed carry only the version); each token's existence,
 * revocation, grant, expiry and write allowance against its entries (audit-tokens.ts); each
 * aggregate's archive state against its last archive or restore entry, and every archived aggregate
 * against an archive entry; each stored snapshot threshold against its schema (or, without one, the
 * last threshold entry); plugin configurations and field mappings against their entries
 * (audit-plugins.ts). Not checked exactly: a token's remaining writes and sliding expiry, which change
 * with use and are not logged per use (only their bounds are).
 */
import { isEventDbxError } from '../core/errors.js';
import type { EventRecord } from '../core/event.js';
import type { Schema } from '../core/schema.js';
import type { TokenRecord } from '../core/tokens.js';
import type { AuditStateReport, AuditVerification } from '../protocol/records.js';
import { prefixEnd } from '../storage/engine.js';
import { verifyArchiveStates } from './audit-archive.js';
import { atOnePoint } from './audit-point.js';
import { verifyPluginState } from './audit-plugins.js';
import { verifyTokenState } from './audit-tokens.js';
import * as K from './keys.js';
import { openSchemaAt, schemaDigest } from './schemas.js';
import { AUDIT_ID, AUDIT_TYPE, type EventStore } from './store.js';
import type { VerifyReport } from './types.js';
import { verifyAggregate } from './verify.js';

// The reports `audit verify` and GET /v1/audit/verify serve are wire shapes.
export type { AuditStateReport, AuditVerification } from '../protocol/records.js';

/**
 * `audit verify`: the audit log's Merkle tree, then the records it vouches for. A log whose meta is
 * gone while its events or ledger entries remain is reported missing, never as an empty log.
 */
export async function verifyAuditLog(store: EventStore, signal?: AbortSignal): Promise<AuditVerification> {
  // The records are compared with the log as of one point (audit-point.ts), taken before the log's tree
  // is verified: the tree verified below then covers every entry the comparison read.
  let state: AuditStateReport | undefined;
  let unread: unknown;
  try {
    state = await atOnePoint(store, ({ log, tokens }) => verifyAuditState(store, log, tokens), signal);
  } catch (e) {
    // A log that does not read is one that does not verify: the report below says why.
    if (!isEventDbxError(e, 'EDBX_ERR_INTEGRITY')) throw e;
    unread = e;
  }
  let report: VerifyReport;
  if (await store.storedMeta(AUDIT_TYPE, AUDIT_ID)) {
    report = await verifyAggregate(store, AUDIT_TYPE, AUDIT_ID, signal);
  } else {
    const trace = await auditTrace(store);
    report =
      trace === undefined
        ? { aggregate_type: AUDIT_TYPE, aggregate_id: AUDIT_ID, ok: true, version: 0, merkle_root: '' }
        : {
            aggregate_type: AUDIT_TYPE,
            aggregate_id: AUDIT_ID,
            ok: false,
            version: 0,
            merkle_root: '',
            reason: `missing, but ${trace}`,
          };
  }
  // A log whose own entries verify may still be cut short: the ledger head records its length.
  if (report.ok && store.auditProblem)
    report = {
      ...report,
      ok: false,
      first_bad_version: report.version + 1,
      reason: store.auditProblem.message,
    };
  // Only a log that verifies can vouch for the records stored beside it.
  if (!report.ok) return { ok: false, report };
  if (state === undefined) throw unread;
  return { ok: state.ok, report, state };
}

/**
 * Where the store still shows an audit log that has no meta: its events, or a ledger entry pointing at
 * one (the ledger is read up to the first such entry). Undefined: the store never had an audit log
 * (events appended, nothing administered).
 */
async function auditTrace(store: EventStore): Promise<string | undefined> {
  if (store.size === 0) return undefined;
  const events = K.eventPrefix(AUDIT_TYPE, AUDIT_ID);
  for await (const _ of store.engine.range('main', { gte: events, lt: prefixEnd(events), limit: 1 }))
    return 'its events are stored';
  for await (const [k, v] of store.engine.range('main', {
    gte: K.positionKey(1),
    lt: prefixEnd(K.positionPrefix()),
  })) {
    const position = K.readU64(k, 1);
    const ref = K.decodeLedgerEntry(position, v)?.ref;
    if (ref?.type === AUDIT_TYPE && ref.id === AUDIT_ID)
      return `ledger position ${position} holds its event ${ref.version}`;
  }
  return undefined;
}

/**
 * What the log says about schemas and thresholds (archives, tokens and plugins are read by
 * audit-archive.ts, audit-tokens.ts and audit-plugins.ts).
 */
interface Logged {
  /** Aggregate type → version → digest of the record (undefined in entries older than digests). */
  readonly schemas: Map<string, Map<number, string | undefined>>;
  /** Aggregate type → the last threshold set. */
  readonly thresholds: Map<string, number>;
}

function readLog(log: readonly EventRecord[]): Logged {
  const out: Logged = { schemas: new Map(), thresholds: new Map() };
  for (const e of log) {
    const p = e.payload;
    if (e.event_type.startsWith('schema-') && p.aggregate && p.schema_version) {
      const versions = out.schemas.get(p.aggregate) ?? new Map<number, string | undefined>();
      versions.set(Number(p.schema_version), p.schema_digest);
      out.schemas.set(p.aggregate, versions);
    } else if (e.event_type === 'snapshot-threshold-set' && p.aggregate_type)
      out.thresholds.set(p.aggregate_type, Number(p.every));
  }
  return out;
}

/**
 * The stored records against `log`, and the tokens against it too (by default those held now: give
 * the ones held when `log` was read, see audit-point.ts).
 */
export async function verifyAuditState(
  store: EventStore,
  log: readonly EventRecord[],
  tokens: Iterable<TokenRecord> = store.tokens.values(),
): Promise<AuditStateReport> {
  const logged = readLog(log);
  const problems: string[] = [];
  const current = await verifySchemas(store, logged, problems);
  // A loop, not push(...): one argument per problem overflows the stack above ~125k of them.
  for (const problem of verifyTokenState(tokens, log)) problems.push(problem);
  for (const problem of await verifyArchiveStates(store, log)) problems.push(problem);
  await verifyThresholds(store, logged, current, problems);
  for (const problem of await verifyPluginState(store, log)) problems.push(problem);
  return { ok: problems.length === 0, problems };
}

/** Every stored schema record by aggregate type and version (undefined: it does not open at its key). */
async function storedSchemas(
  store: EventStore,
  problems: string[],
): Promise<Map<string, Map<number, Schema | undefined>>> {
  const out = new Map<string, Map<number, Schema | undefined>>();
  const prefix = K.schemaPrefix();
  for await (const [k, v] of store.engine.range('main', { gte: prefix, lt: prefixEnd(prefix) })) {
    const aggregate = K.decodeSchemaKey(k);
    let schema: Schema | undefined;
    try {
      schema = openSchemaAt(store, k, v);
    } catch (e) {
      if (!isEventDbxError(e)) throw e;
      problems.push(e.message);
    }
    const versions = out.get(aggregate) ?? new Map<number, Schema | undefined>();
    versions.set(K.keyVersion(k), schema);
    out.set(aggregate, versions);
  }
  return out;
}

/** The highest of `versions` (-Infinity for none, as Math.max), without one argument per version. */
function highest(versions: Iterable<number>): number {
  let max = -Infinity;
  for (const v of versions) max = Math.max(max, v);
  return max;
}

/** Checks the schema records; returns each aggregate type's current schema (when it opens). */
async function verifySchemas(
  store: EventStore,
  logged: Logged,
  problems: string[],
): Promise<Map<string, Schema>> {
  const stored = await storedSchemas(store, problems);
  const current = new Map<string, Schema>();
  for (const [aggregate, versions] of logged.schemas) {
    const last = highest(versions.keys());
    const have = stored.get(aggregate);
    const now = have && highest(have.keys());
    if (have === undefined || now === undefined) {
      problems.push(`schema ${aggregate}: missing, the audit log records version ${last}`);
      continue;
    }
    if (now !== last)
      problems.push(`schema ${aggregate}: stored version ${now}, the audit log records version ${last}`);
    for (const [version, digest] of versions) {
      // Versions above the stored current one are the rollback reported above.
      if (version > now) continue;
      if (!have.has(version))
        problems.push(`schema ${aggregate} version ${version}: missing, the audit log records it`);
      const schema = have.get(version);
      if (schema && digest !== undefined && schemaDigest(schema) !== digest)
        problems.push(
          `schema ${aggregate} version ${version}: the stored record differs from the one the audit log records`,
        );
    }
    for (const version of have.keys())
      if (version < last && !versions.has(version))
        problems.push(`schema ${aggregate} version ${version}: stored but the audit log never recorded it`);
  }
  for (const [aggregate, versions] of stored) {
    const now = highest(versions.keys());
    if (!logged.schemas.has(aggregate))
      problems.push(`schema ${aggregate}: version ${now} is stored but the audit log never recorded it`);
    const schema = versions.get(now);
    if (schema) current.set(aggregate, schema);
  }
  return current;
}

/**
 * The stored thresholds (G snapshot-thresholds, kept in clear) are derived: an aggregate type's schema
 * says what its threshold is, and the store uses that whatever the stored copy says. A disagreement is
 * reported here, never repaired silently when the store opens.
 */
async function verifyThresholds(
  store: EventStore,
  logged: Logged,
  schemas: ReadonlyMap<string, Schema>,
  problems: string[],
): Promise<void> {
  const raw = await store.engine.get('main', K.globalKey('snapshot-thresholds'));
  let stored: Record<string, unknown> = {};
  if (raw) {
    try {
      const parsed: unknown = JSON.parse(raw.toString('utf8'));
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error();
      stored = parsed as Record<string, unknown>;
    } catch {
      problems.push('snapshot thresholds: the stored record is not a JSON object');
      return;
    }
  }
  const types = new Set([...Object.keys(stored), ...schemas.keys(), ...logged.thresholds.keys()]);
  for (const type of [...types].sort()) {
    const have = Object.hasOwn(stored, type) ? stored[type] : 0;
    const schema = schemas.get(type);
    const want = schema ? schema.snapshot_threshold : (logged.thresholds.get(type) ?? 0);
    if (have === want) continue;
    const says = schema ? `its schema (version ${schema.version}) says` : 'the audit log records';
    problems.push(`snapshot threshold of ${type}: stored ${JSON.stringify(have)}, ${says} ${want}`);
  }
}
