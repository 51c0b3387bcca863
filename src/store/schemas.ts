/**
 * Schemas on the store: every version is kept under `H aggregate \0 version` (sealed), the current
 * ones are held in memory and checked by the store's append validator, which runs inside the single
 * writer. Each change is an exclusive writer job, atomic with its audit-log entry, and reaches the
 * validator only once it is durable (`afterCommit`, before the writer runs the next batch): so a change
 * that was acknowledged applies to every append processed after it.
 *
 * @example
 * await installSchemas(store, 'true');
 * await createSchema(store, { aggregate: 'patient', events: 'patient-added,patient-updated' }, ctx);
 * await alterSchema(store, 'patient', { event: 'patient-added', add: 'name,status' }, ctx);
 */
import { canonicalJson } from '../core/canonical.js';
import { type EventDbxError, err, isEventDbxError } from '../core/errors.js';
import { sha256 } from '../core/merkle/index.js';
import { aggregateType, eventType } from '../core/names.js';
import {
  type AlterRequest,
  type CompiledSchema,
  type RestrictMode,
  type Schema,
  type SchemaChange,
  RESTRICT_MODES,
  addEvents,
  alterSchema as alterBody,
  checkAppend,
  compileSchema,
  newSchema,
  parseNames,
  parseThreshold,
  removeEvent,
} from '../core/schema.js';
import { prefixEnd } from '../storage/engine.js';
import type { AuditAction } from '../protocol/audit.js';
import { openJson, sealJson } from './codec.js';
import * as K from './keys.js';
import { AUDIT_ID, AUDIT_TYPE, type EventStore } from './store.js';
import type { WriteContext } from './types.js';

export type { RestrictMode, Schema } from '../core/schema.js';

const AUDIT: ReadonlyArray<readonly [string, string]> = [[AUDIT_TYPE, AUDIT_ID]];

/** The committed schemas of one store and its restriction mode, read by the validator. */
class Registry {
  mode: RestrictMode = 'true';
  readonly schemas = new Map<string, CompiledSchema>();
  /**
   * Aggregate types whose current schema record does not open at its key (tampering): their rules are
   * unknown, so their appends (unless nothing is validated), schema reads and changes are refused with
   * the integrity error, while the rest of the store stays readable and `audit verify` can report it.
   */
  readonly broken = new Map<string, EventDbxError>();
}

const registries = new WeakMap<EventStore, Registry>();
const pending = new WeakMap<EventStore, Promise<Registry>>();

/**
 * Open the schema record stored at an H key. Sealing does not bind a value to its key, so a record
 * moved, copied or swapped to another key opens fine: one that names another aggregate type or
 * version than its key is refused (it would apply one type's rules, or locks, to another).
 */
export function openSchemaAt(store: EventStore, key: Buffer, value: Buffer): Schema {
  const aggregate = K.decodeSchemaKey(key);
  const version = K.keyVersion(key);
  const where = `schema ${aggregate} version ${version}`;
  const schema = openJson<Schema | null>(store.env.codec, value, where);
  if (schema?.aggregate !== aggregate || schema.version !== version) {
    throw err('EDBX_ERR_INTEGRITY', {
      where,
      reason: `the record is ${String(schema?.aggregate)} version ${String(schema?.version)}: it does not belong at this key`,
    });
  }
  return schema;
}

/** SHA-256 (hex) of a schema record's canonical JSON: the audit log entry of each change carries it. */
export const schemaDigest = (schema: Schema): string =>
  sha256(Buffer.from(canonicalJson(schema), 'utf8')).toString('hex');

async function readCurrent(
  store: EventStore,
): Promise<{ schemas: Map<string, CompiledSchema>; broken: Map<string, EventDbxError> }> {
  const last = new Map<string, [Buffer, Buffer]>();
  const prefix = K.schemaPrefix();
  // Keys sort by aggregate then version, so the last value seen per aggregate is its current version.
  for await (const [k, v] of store.engine.range('main', { gte: prefix, lt: prefixEnd(prefix) })) {
    last.set(K.decodeSchemaKey(k), [k, v]);
  }
  const schemas = new Map<string, CompiledSchema>();
  const broken = new Map<string, EventDbxError>();
  for (const [aggregate, [k, v]] of last) {
    try {
      schemas.set(aggregate, compileSchema(openSchemaAt(store, k, v)));
    } catch (e) {
      if (!isEventDbxError(e, 'EDBX_ERR_INTEGRITY')) throw e;
      broken.set(aggregate, e);
    }
  }
  return { schemas, broken };
}

/** Load the stored schemas and install the append validator for `mode` on the store. */
export async function installSchemas(store: EventStore, mode: RestrictMode): Promise<void> {
  if (!RESTRICT_MODES.includes(mode)) {
    throw err('EDBX_ERR_INVALID_ARGUMENT', {
      name: 'restrict mode',
      value: mode,
      reason: 'use true, strict or false',
    });
  }
  const reg = registries.get(store) ?? new Registry();
  const install = (loaded: Awaited<ReturnType<typeof readCurrent>>) => {
    reg.schemas.clear();
    for (const [a, c] of loaded.schemas) reg.schemas.set(a, c);
    reg.broken.clear();
    for (const [a, e] of loaded.broken) reg.broken.set(a, e);
    reg.mode = mode;
    registries.set(store, reg);
    store.setValidator((req) => {
      const broken = reg.broken.get(req.aggregate_type);
      if (broken && reg.mode !== 'false') throw broken;
      checkAppend(reg.schemas.get(req.aggregate_type), reg.mode, req);
    });
  };
  // Loaded inside an exclusive job, so no schema change commits between the read and the swap. A
  // store that refuses writes (it lost acknowledged events, its ledger head is wrong) commits nothing,
  // so it is read as it is: its reads (list, get, verify, the audit log) still work.
  if (store.writeFailure) install(await readCurrent(store));
  else
    await store.exclusive([], async (tx) => {
      const loaded = await readCurrent(store);
      tx.afterCommit(() => install(loaded));
    });
  // The schemas say what the thresholds are; the stored copy (in clear) may disagree after a crash
  // between a schema change and its threshold update, or after tampering. The schema wins, in memory
  // only: opening a store (even to verify it) writes nothing, and `audit verify` reports the difference.
  store.useSnapshotThresholds(
    new Map([...reg.schemas.values()].map(({ schema }) => [schema.aggregate, schema.snapshot_threshold])),
  );
}

/** The snapshot threshold of an aggregate type as stored (G snapshot-thresholds), 0 when none. */
async function storedThreshold(store: EventStore, aggregate: string): Promise<number> {
  const raw = await store.engine.get('main', K.globalKey('snapshot-thresholds'));
  try {
    const every = (raw && (JSON.parse(raw.toString('utf8')) as Record<string, unknown>)[aggregate]) ?? 0;
    return typeof every === 'number' ? every : -1;
  } catch {
    return -1;
  }
}

/** The restriction mode installed on the store (undefined before `installSchemas`). */
export const restrictModeOf = (store: EventStore): RestrictMode | undefined => registries.get(store)?.mode;

/** The store's registry, installing the default mode on first use by a store nobody installed. */
function registry(store: EventStore): Promise<Registry> {
  const r = registries.get(store);
  if (r) return Promise.resolve(r);
  let p = pending.get(store);
  if (!p) {
    p = installSchemas(store, 'true').then(() => registries.get(store)!);
    pending.set(store, p);
    p.catch(() => pending.delete(store));
  }
  return p;
}

export interface SchemaResult {
  readonly schema: Schema;
  /** False when the request asked for what the schema already says (no new version). */
  readonly changed: boolean;
}

async function change(
  store: EventStore,
  aggregate: string,
  ctx: WriteContext,
  action: AuditAction,
  compute: (current: Schema | undefined) => SchemaChange,
): Promise<SchemaResult> {
  const reg = await registry(store);
  const out = await store.exclusive(AUDIT, async (tx) => {
    refuseBroken(reg, aggregate);
    // Exclusive jobs run alone and after every earlier commit's afterCommit: this is the current schema.
    const current = reg.schemas.get(aggregate)?.schema;
    const before = current?.snapshot_threshold ?? store.snapshotThreshold(aggregate);
    const next = compute(current);
    if (!next) return { schema: current!, changed: false, before };
    const now = store.env.now().toISOString();
    const schema: Schema = {
      ...next.body,
      version: (current?.version ?? 0) + 1,
      created_at: current?.created_at ?? now,
      updated_at: now,
      updated_by: { group: ctx.issuedBy.group, user: ctx.issuedBy.user },
      change: next.change,
    };
    tx.put(K.schemaKey(aggregate, schema.version), sealJson(store.env.codec, schema));
    store.audit(tx, ctx, action, {
      aggregate,
      schema_version: String(schema.version),
      change: next.change,
      // What the record holds, so `audit verify` compares content (a record swapped or rewritten
      // keeps its version number), not only the version.
      schema_digest: schemaDigest(schema),
    });
    tx.afterCommit(() => reg.schemas.set(aggregate, compileSchema(schema)));
    return { schema, changed: true, before };
  });
  const threshold = out.schema.snapshot_threshold;
  if (
    out.changed &&
    (threshold !== out.before ||
      threshold !== store.snapshotThreshold(aggregate) ||
      threshold !== (await storedThreshold(store, aggregate)))
  ) {
    // The schema is durable first; a crash before this line leaves the stored threshold behind (the
    // schema's applies, `audit verify` reports it): the schema's next change writes it. The value is
    // read at submission, so with concurrent changes the last threshold job carries the last schema's.
    const latest = reg.schemas.get(aggregate)!.schema.snapshot_threshold;
    await store.setSnapshotThreshold(aggregate, latest, ctx);
  }
  return { schema: out.schema, changed: out.changed };
}

const notFound = (aggregate: string) => err('EDBX_ERR_SCHEMA_NOT_FOUND', { aggregate });

/** `schema create`: the first version of a schema; refused when the aggregate type has one. */
export async function createSchema(
  store: EventStore,
  input: { aggregate: unknown; events: unknown; snapshotThreshold?: unknown },
  ctx: WriteContext,
): Promise<SchemaResult> {
  const aggregate = aggregateType(input.aggregate);
  const events = parseNames(input.events, 'event');
  const threshold =
    input.snapshotThreshold === undefined ? undefined : parseThreshold(input.snapshotThreshold);
  return change(store, aggregate, ctx, 'schema-created', (current) => {
    if (current) throw err('EDBX_ERR_SCHEMA_EXISTS', { aggregate, version: current.version });
    const body = newSchema(aggregate, events, threshold ?? store.snapshotThreshold(aggregate));
    const extra =
      threshold === undefined
        ? ''
        : threshold === 0
          ? '; no automatic snapshots'
          : `; snapshot every ${threshold} events`;
    return { body, change: `created with events ${events.join(', ')}${extra}` };
  });
}

/** `schema add`: declare more events. */
export async function addSchemaEvents(
  store: EventStore,
  aggregate: unknown,
  events: unknown,
  ctx: WriteContext,
): Promise<SchemaResult> {
  const type = aggregateType(aggregate);
  const names = parseNames(events, 'event');
  return change(store, type, ctx, 'schema-events-added', (current) => {
    if (!current) throw notFound(type);
    return addEvents(current, names);
  });
}

/** `schema alter`: event fields, aggregate or field locks, snapshot threshold. */
export async function alterSchema(
  store: EventStore,
  aggregate: unknown,
  req: AlterRequest,
  ctx: WriteContext,
): Promise<SchemaResult> {
  const type = aggregateType(aggregate);
  return change(store, type, ctx, 'schema-altered', (current) => {
    if (!current) throw notFound(type);
    return alterBody(current, req);
  });
}

/** `schema remove`: stop accepting an event (the last event cannot be removed). */
export async function removeSchemaEvent(
  store: EventStore,
  aggregate: unknown,
  event: unknown,
  ctx: WriteContext,
): Promise<SchemaResult> {
  const type = aggregateType(aggregate);
  const name = eventType(event);
  return change(store, type, ctx, 'schema-event-removed', (current) => {
    if (!current) throw notFound(type);
    return removeEvent(current, name);
  });
}

/** A schema whose current record does not open at its key is refused, never served or changed. */
function refuseBroken(reg: Registry, aggregate?: string): void {
  const broken = aggregate === undefined ? reg.broken.values().next().value : reg.broken.get(aggregate);
  if (broken) throw broken;
}

export interface SchemaListOptions {
  /** Resume after this aggregate type (the last one seen). */
  readonly after?: string | undefined;
  readonly skip?: number;
  readonly take?: number;
  readonly signal?: AbortSignal | undefined;
  /** Only these aggregate types (a token limited to some aggregates lists only theirs). */
  readonly types?: readonly string[] | undefined;
}

/**
 * Current schemas, by aggregate type. The aggregate types come from the H range, one seek each past
 * the versions of the one before (a schema's history is never read out), so only the page is read;
 * each current version is the committed one the validator applies.
 */
export async function listSchemas(store: EventStore, o: SchemaListOptions = {}): Promise<Schema[]> {
  const reg = await registry(store);
  refuseBroken(reg);
  const take = o.take ?? Number.MAX_SAFE_INTEGER;
  const out: Schema[] = [];
  if (o.types !== undefined) {
    // Type names are ASCII, so this is the order of the H keys, the order of the whole listing.
    const types = [...new Set(o.types)].sort().filter((t) => o.after === undefined || t > o.after);
    const schemas = types.flatMap((t) => reg.schemas.get(t)?.schema ?? []);
    return schemas.slice(o.skip ?? 0, (o.skip ?? 0) + take);
  }
  const lt = prefixEnd(K.schemaPrefix());
  let gte = o.after === undefined ? K.schemaPrefix() : prefixEnd(K.schemaPrefix(o.after));
  let skip = o.skip ?? 0;
  while (out.length < take) {
    const key = await firstKey(store, gte, lt, o.signal);
    if (key === undefined) break;
    const aggregate = K.decodeSchemaKey(key);
    gte = prefixEnd(K.schemaPrefix(aggregate));
    // A schema whose first version is written but not yet applied is listed once it applies.
    const schema = reg.schemas.get(aggregate)?.schema;
    if (!schema) continue;
    if (skip > 0) skip--;
    else out.push(schema);
  }
  return out;
}

async function firstKey(
  store: EventStore,
  gte: Buffer,
  lt: Buffer,
  signal: AbortSignal | undefined,
): Promise<Buffer | undefined> {
  for await (const keys of store.engine.keyChunks('main', { gte, lt, limit: 1, signal })) return keys[0];
  return undefined;
}

/** The current schema of an aggregate type. */
export async function getSchema(store: EventStore, aggregate: unknown): Promise<Schema> {
  const type = aggregateType(aggregate);
  const reg = await registry(store);
  refuseBroken(reg, type);
  const schema = reg.schemas.get(type)?.schema;
  if (!schema) throw notFound(type);
  return schema;
}

/** Every version of a schema, oldest first. */
export async function schemaHistory(store: EventStore, aggregate: unknown): Promise<Schema[]> {
  const type = aggregateType(aggregate);
  await registry(store);
  const prefix = K.schemaPrefix(type);
  const out: Schema[] = [];
  for await (const [k, v] of store.engine.range('main', { gte: prefix, lt: prefixEnd(prefix) })) {
    out.push(openSchemaAt(store, k, v));
  }
  if (out.length === 0) throw notFound(type);
  return out;
}
