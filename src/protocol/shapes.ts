/**
 * Shape checks of the API's answers, for the client SDK: a 2xx body becomes a typed result only once
 * it has the fields its type declares, so a gateway's JSON, a `null` or a cut-off record is reported
 * as an unexpected answer instead of resolving as a record whose `version` is undefined, or failing
 * later with a bare TypeError. Zod schemas, cheap on purpose: the type of each declared field (nested
 * records and array items included), no patterns or ranges, unknown fields allowed (a newer server
 * may add some). What a verifier relies on (hex hashes, sizes) it checks itself, in src/client/verify.ts.
 */
import { z } from 'zod';
import type {
  AggregatePage,
  AuditPage,
  EventPage,
  RecentEvents,
  SchemaHistory,
  SchemaList,
  TokenPage,
  TransactionResult,
  WithheldAuditEntry,
} from './responses.js';
import type {
  DeadLetter,
  DeadLetterPage,
  PluginList,
  PluginStatus,
  PluginStatusList,
  PluginView,
  ReplayResult,
  RetryResult,
} from './plugins.js';
import type { CheckpointView, ConsistencyProof, InclusionProof } from './proofs.js';
import type {
  AggregateSummary,
  AggregateView,
  AuditVerification,
  EventRecord,
  Health,
  HealthDegraded,
  HealthFailing,
  HealthOk,
  IssuedToken,
  SchemaDefinition,
  TokenView,
  VerifyReport,
} from './records.js';

/** Checks that a parsed answer is a `T`: `check` says what is wrong in a few words, or undefined. */
export interface Shape<T> {
  /** What the answer should be, for messages: "an EventRecord". */
  readonly name: string;
  readonly check: (v: unknown) => string | undefined;
  /** Type only, never set: carries `T` to the caller. */
  readonly _type?: T;
}

type Check = z.ZodType;
/** One schema per field of `T`, optional fields included (so the checks keep up with the types). */
type Fields<T> = { readonly [K in keyof T]-?: Check };

const string = z.string();
const number = z.number();
const boolean = z.boolean();
/** Any JSON object (not an array, not null); its members are not checked. */
const object = z.looseObject({});
const literal = (want: string) => z.literal(want);
const nullable = (c: Check) => z.nullable(c);
const optional = (c: Check) => z.optional(c);
const list = (item: Check) => z.array(item);
const fields = <T>(spec: Fields<T>) => z.looseObject(spec as Record<string, Check>);

const article = (type: string) => (/^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`);

function describe(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : article(typeof v);
}

/** `events[1].position`: where an issue is, as a reader of the JSON would write it. */
const pathText = (path: readonly PropertyKey[]): string =>
  path.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`)).join('');

/** What is wrong, in a few words: " is missing", " is a string, not a number", ' is "down", not "ok"'. */
function problem(issue: z.core.$ZodIssue, root: unknown): string {
  let v: unknown = root;
  for (const k of issue.path)
    v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  const where = issue.path.length === 0 ? 'the answer' : pathText(issue.path);
  if (v === undefined) return `${where} is missing`;
  if (issue.code === 'invalid_type') return `${where} is ${describe(v)}, not ${article(issue.expected)}`;
  if (issue.code === 'invalid_value')
    return `${where} is ${JSON.stringify(v)?.slice(0, 40)}, not ${issue.values.map((x) => JSON.stringify(x)).join(' or ')}`;
  return `${where}: ${issue.message}`;
}

/** `schema`, or a function choosing the schema by the answer (one of several kinds of answer). */
function shape<T>(name: string, schema: Check | ((v: unknown) => Check)): Shape<T> {
  return {
    name,
    check: (v) => {
      const r = (typeof schema === 'function' ? schema(v) : schema).safeParse(v);
      return r.success ? undefined : problem(r.error.issues[0]!, v);
    },
  };
}

const issuedBy = fields<SchemaDefinition['updated_by']>({ group: string, user: string });
const eventIssuer = fields<EventRecord['metadata']['issued_by']>({
  group: string,
  user: string,
  token: optional(string),
});
const eventRecord = fields<EventRecord>({
  aggregate_type: string,
  aggregate_id: string,
  event_type: string,
  payload: object,
  metadata: fields<EventRecord['metadata']>({ event_id: string, created_at: string, issued_by: eventIssuer }),
  version: number,
  position: number,
  hash: string,
  merkle_root: string,
});
const events = list(eventRecord);
const cursor = nullable(string);
const strings = list(string);

const summary = fields<AggregateSummary>({
  aggregate_type: string,
  aggregate_id: string,
  version: number,
  merkle_root: string,
  archived: boolean,
  updated_at: string,
});
const verifyReport = fields<VerifyReport>({
  aggregate_type: string,
  aggregate_id: string,
  ok: boolean,
  version: number,
  merkle_root: string,
  first_bad_version: optional(number),
  reason: optional(string),
});
const schema = fields<SchemaDefinition>({
  aggregate: string,
  version: number,
  events: object,
  locked: boolean,
  locked_fields: strings,
  snapshot_threshold: number,
  created_at: string,
  updated_at: string,
  updated_by: issuedBy,
  change: string,
});
const tokenFields: Fields<TokenView> = {
  id: string,
  group: string,
  user: string,
  status: string,
  expires_at: nullable(string),
  keep_alive: boolean,
  limit: nullable(number),
  remaining: nullable(number),
  read_only: boolean,
  scopes: strings,
  audit: boolean,
  created_at: string,
  revoked_at: nullable(string),
};
const tokenView = fields<TokenView>(tokenFields);
const healthFields = {
  version: string,
  restrict: string,
  uptime_seconds: number,
  events: number,
  layout: optional(number),
};
const healthFailing = fields<HealthFailing>({
  status: literal('failing'),
  ...healthFields,
  code: string,
  detail: string,
});
const healthDegraded = fields<HealthDegraded>({
  status: literal('degraded'),
  ...healthFields,
  code: string,
  detail: string,
});
const healthOk = fields<HealthOk>({ status: literal('ok'), ...healthFields });

const pluginView = fields<PluginView>({
  name: string,
  kind: string,
  enabled: boolean,
  target: string,
  settings: object,
  delivery: object,
  created_at: string,
  updated_at: string,
  failure: optional(object),
});
const pluginStatus = fields<PluginStatus>({
  name: string,
  kind: string,
  enabled: boolean,
  target: string,
  state: string,
  cursor: number,
  head: number,
  lag: number,
  attempts: number,
  delivered: number,
  retries: number,
  dead_letters: number,
  last_error: optional(object),
  last_delivered_at: optional(string),
  next_retry_at: optional(string),
});
const deadLetter = fields<DeadLetter>({
  plugin: string,
  position: number,
  aggregate_type: string,
  aggregate_id: string,
  version: number,
  event_type: string,
  event_id: string,
  code: string,
  reason: string,
  attempts: number,
  dead_lettered_at: string,
});

/** The shape of each answer the SDK reads, by answer type. */
export const SHAPES = {
  health: shape<Health>('a health answer', (v) => {
    // A failing or degraded answer is checked as one; anything else must be an "ok" answer.
    const status = (v as { status?: unknown } | null)?.status;
    return status === 'failing' ? healthFailing : status === 'degraded' ? healthDegraded : healthOk;
  }),
  /** /health's 503 when a write failed: an answer, not an error (a stopping server sends a problem). */
  healthFailing: shape<HealthFailing>('a failing health answer', healthFailing),
  openApi: shape<Record<string, unknown>>(
    'an OpenAPI document',
    fields<{ openapi: string; paths: object }>({ openapi: string, paths: object }),
  ),
  eventRecord: shape<EventRecord>('an EventRecord', eventRecord),
  eventPage: shape<EventPage>('a page of events', fields<EventPage>({ events, next_cursor: cursor })),
  recentEvents: shape<RecentEvents>('a list of events', fields<RecentEvents>({ events })),
  transactionResult: shape<TransactionResult>('a transaction result', fields<TransactionResult>({ events })),
  aggregateView: shape<AggregateView>(
    'an AggregateView',
    fields<AggregateView>({
      aggregate_type: string,
      aggregate_id: string,
      version: number,
      state: object,
      merkle_root: string,
      archived: boolean,
      created_at: string,
      updated_at: string,
    }),
  ),
  aggregatePage: shape<AggregatePage>(
    'a page of aggregates',
    fields<AggregatePage>({ aggregates: list(summary), next_cursor: cursor }),
  ),
  verifyReport: shape<VerifyReport>('a verify report', verifyReport),
  inclusionProof: shape<InclusionProof>(
    'an inclusion proof',
    fields<InclusionProof>({
      leaf_index: number,
      tree_size: number,
      leaf_hash: string,
      audit_path: strings,
      root: string,
    }),
  ),
  consistencyProof: shape<ConsistencyProof>(
    'a consistency proof',
    fields<ConsistencyProof>({
      first: number,
      second: number,
      first_root: string,
      second_root: string,
      consistency_path: strings,
    }),
  ),
  checkpoint: shape<CheckpointView>(
    'a checkpoint',
    fields<CheckpointView>({
      origin: string,
      size: number,
      root: string,
      timestamp: string,
      signature: string,
      key_name: string,
      note: string,
      public_key: string,
    }),
  ),
  schema: shape<SchemaDefinition>('a schema', schema),
  schemaList: shape<SchemaList>(
    'a page of schemas',
    fields<SchemaList>({ schemas: list(schema), next_cursor: cursor }),
  ),
  schemaHistory: shape<SchemaHistory>(
    'a schema history',
    fields<SchemaHistory>({ aggregate: string, versions: list(schema) }),
  ),
  token: shape<TokenView>('a TokenView', tokenView),
  issuedToken: shape<IssuedToken>('an issued token', fields<IssuedToken>({ ...tokenFields, token: string })),
  tokenPage: shape<TokenPage>(
    'a page of tokens',
    fields<TokenPage>({ tokens: list(tokenView), next_cursor: cursor }),
  ),
  auditPage: shape<AuditPage>(
    'a page of the audit log',
    fields<AuditPage>({
      entries: events,
      withheld: list(fields<WithheldAuditEntry>({ version: number, position: number, hash: string })),
      next_cursor: cursor,
    }),
  ),
  auditVerification: shape<AuditVerification>(
    'an audit log verification',
    fields<AuditVerification>({
      ok: boolean,
      report: verifyReport,
      state: optional(fields<NonNullable<AuditVerification['state']>>({ ok: boolean, problems: strings })),
    }),
  ),
  pluginList: shape<PluginList>(
    'a list of plugins',
    fields<PluginList>({
      plugins: list(pluginView),
      mappings: fields<PluginList['mappings']>({ base: object, postgres: object, sqlite: object }),
    }),
  ),
  pluginStatus: shape<PluginStatusList>(
    'a plugin status list',
    fields<PluginStatusList>({ plugins: list(pluginStatus), running: boolean }),
  ),
  deadLetters: shape<DeadLetterPage>(
    'a page of dead letters',
    fields<DeadLetterPage>({
      plugin: string,
      total: number,
      dead_letters: list(deadLetter),
      next_from: optional(nullable(number)),
    }),
  ),
  replayResult: shape<ReplayResult>(
    'a replay result',
    fields<ReplayResult>({
      plugin: string,
      from: number,
      head: number,
      cleared_dead_letters: number,
      rebuilt: optional(strings),
      running: boolean,
    }),
  ),
  retryResult: shape<RetryResult>(
    'a retry result',
    fields<RetryResult>({
      plugin: string,
      running: boolean,
      queued: number,
      outcome: optional(
        fields<NonNullable<RetryResult['outcome']>>({ retried: number, delivered: number, failed: number }),
      ),
    }),
  ),
} as const;
