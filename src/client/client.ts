/**
 * `EventDbxClient`: typed access to every REST endpoint of an EventDBX server, client-side
 * verification (`verifyEvent`, `audit`), and live subscriptions. Depends only on the wire protocol
 * (src/protocol) and the pure Merkle and checkpoint verifiers; works with Node 20's built-in `fetch`.
 *
 * @example
 * import { EventDbxClient } from 'eventdbx/client';
 * const db = new EventDbxClient({ url: 'http://localhost:7070', token: process.env.EVENTDBX_TOKEN });
 * const e = await db.append('patient', 'p-001', { event_type: 'patient-added', payload: { name: 'Jane' } });
 * for await (const ev of db.events('patient', 'p-001')) console.log(ev.version, ev.payload);
 */
import { randomUUID } from 'node:crypto';
import {
  type AggregatePage,
  type AggregateSummary,
  type AggregateView,
  type AppendBody,
  type AuditPage,
  type AuditQuery,
  type AuditVerification,
  type CheckpointView,
  type ConsistencyProof,
  type EventPage,
  type EventRecord,
  type Health,
  type InclusionProof,
  type ListAggregatesQuery,
  type PageQuery,
  PATHS as ANY_PATHS,
  type SchemaAlterBody,
  type SchemaCreateBody,
  type SchemaDefinition,
  type SchemaList,
  type TokenPage,
  type TransactionEvent,
  type TransactionResult,
  type VerifyReport,
  type IssuedToken,
  type TokenCreateBody,
  type TokenView,
  type DeadLetterPage,
  type PluginList,
  type PluginStatusList,
  type ReplayResult,
  type RetryResult,
  SHAPES,
  type Shape,
} from '../protocol/index.js';
import { type AuditOptions, type AuditResult, ledgerCheckpoint, runAudit } from './audit.js';
import { EventDbxConfigError } from './errors.js';
import { DEFAULT_RETRY, type Query, Transport } from './http.js';
import {
  type CallOptions,
  type ClientOptions,
  DEFAULT_URL,
  baseUrl,
  checkPayload,
  pinnedKey,
  retryOption,
  timeoutOption,
  urlSafe,
  whole,
} from './options.js';
import { type AppendOutcome, type TransactionOutcome, outcomeOf } from './outcome.js';
import { type SubscribeOptions, subscribe } from './subscribe.js';
import { type CheckpointStore, FileCheckpointStore } from './trust.js';
import {
  type TreeHead,
  type VerifiedEvent,
  type VerifiedLedgerInclusion,
  checkEventProof,
  checkLedgerInclusion,
} from './verify.js';

/** The API's paths, refusing an id that cannot be sent in a URL with a configuration error. */
const PATHS = Object.fromEntries(
  Object.entries(ANY_PATHS).map(([k, build]) => [
    k,
    typeof build === 'string'
      ? build
      : (...args: unknown[]) => {
          for (const a of args) if (typeof a === 'string') urlSafe(a);
          return (build as (...a: unknown[]) => string)(...args);
        },
  ]),
) as typeof ANY_PATHS;

/** Every item of a paged listing, one page at a time: `read` fetches the page after `cursor`. */
async function* pages<K extends string, T>(
  read: (
    cursor: string | undefined,
  ) => Promise<{ readonly [k in K]: readonly T[] } & { next_cursor: string | null }>,
  key: K,
): AsyncGenerator<T> {
  let cursor: string | undefined;
  do {
    const page = await read(cursor);
    yield* page[key];
    cursor = page.next_cursor ?? undefined;
  } while (cursor !== undefined);
}

/**
 * Every method that returns a Promise is `async`, and the iterators check their arguments on their
 * first `next()`: a bad argument rejects like any other error, never throws where it is called.
 */
export class EventDbxClient {
  readonly url: string;
  readonly #t: Transport;
  readonly #o: ClientOptions;
  readonly #trust: CheckpointStore | undefined;
  /** The pinned key as Node reads it (a literal `\n` in the option read as a newline). */
  readonly #publicKey: string | undefined;
  #audits: Promise<unknown> = Promise.resolve();

  /** Checks every option: one that cannot work is an `EventDbxConfigError` here, not at a later call. */
  constructor(options: ClientOptions = {}) {
    this.#o = options;
    this.url = baseUrl(options.url ?? process.env.EVENTDBX_URL ?? DEFAULT_URL);
    // An empty value (`EVENTDBX_PUBLIC_KEY=` in a compose file) pins nothing, as no value does: audit()
    // then refuses to run without a key, so nothing is trusted by mistake.
    const pin = options.publicKey;
    this.#publicKey =
      pin === undefined || (typeof pin === 'string' && pin.trim() === '') ? undefined : pinnedKey(pin);
    this.#t = new Transport({
      url: this.url,
      token: options.token ?? process.env.EVENTDBX_TOKEN,
      fetch: options.fetch ?? globalThis.fetch,
      retry: retryOption(options.retry, DEFAULT_RETRY),
      timeoutMs: timeoutOption(options.timeoutMs ?? 0, 'timeoutMs'),
      headers: options.headers ?? {},
    });
    this.#trust = typeof options.trust === 'string' ? new FileCheckpointStore(options.trust) : options.trust;
  }

  /** A read whose answer must have `shape` (else `EDBX_ERR_UNEXPECTED_RESPONSE`). */
  async #get<T>(shape: Shape<T>, path: string, query?: Query, o?: CallOptions): Promise<T> {
    return (await this.#t.request<T>(path, { query, idempotent: true, signal: o?.signal, shape })).body;
  }

  /**
   * A read for the verifiers (`verifyEvent`, `audit`), unchecked here: they check every field they
   * use themselves, so that a falsified answer, whatever its shape, is a verification error.
   */
  async #unverified(path: string, query?: Query, o?: CallOptions): Promise<unknown> {
    return (await this.#t.request<unknown>(path, { query, idempotent: true, signal: o?.signal })).body;
  }

  // ------------------------------------------------------------------ system

  /**
   * `GET /health` (no token needed): `status: "ok"`; `"degraded"` with a `code` and `detail` while it
   * serves but an operator must act (damaged files met, its acknowledged-head file not written); or
   * `"failing"` with the `code` and `detail` of a failed write (the server refuses writes until it is
   * restarted; its 503 is this answer, not an error). A stopping server is `EDBX_ERR_SHUTTING_DOWN`,
   * no answer `EDBX_ERR_CONNECTION`.
   *
   * @example
   * const h = await db.health();
   * if (h.status === 'failing') alert(`${h.code}: ${h.detail}`); // fix the cause, then `eventdbx restart`
   */
  async health(o?: CallOptions): Promise<Health> {
    return (
      await this.#t.request<Health>(PATHS.health, {
        idempotent: true,
        signal: o?.signal,
        shape: SHAPES.health,
        answer: { status: 503, shape: SHAPES.healthFailing },
      })
    ).body;
  }

  /** `GET /metrics`: Prometheus text. */
  async metrics(o?: CallOptions): Promise<string> {
    return (await this.#t.request<string>(PATHS.metrics, { idempotent: true, as: 'text', signal: o?.signal }))
      .body;
  }

  /** `GET /openapi.json`: this API as OpenAPI 3.1. */
  async openApi(o?: CallOptions): Promise<Record<string, unknown>> {
    return this.#get(SHAPES.openApi, PATHS.openapi, undefined, o);
  }

  // ------------------------------------------------------------------ aggregates

  /** One page of `GET /v1/aggregates` (scoped tokens see only what they may read). */
  async listAggregates(q: ListAggregatesQuery = {}, o?: CallOptions): Promise<AggregatePage> {
    return this.#get(
      SHAPES.aggregatePage,
      PATHS.aggregates,
      { type: q.type, take: q.take, skip: q.skip, cursor: q.cursor },
      o,
    );
  }

  /**
   * Every aggregate, following `next_cursor`.
   *
   * @example
   * for await (const a of db.aggregates({ type: 'patient' })) console.log(a.aggregate_id, a.version);
   */
  async *aggregates(
    q: { readonly type?: string | undefined; readonly pageSize?: number | undefined } & CallOptions = {},
  ): AsyncGenerator<AggregateSummary> {
    yield* pages(
      (cursor) => this.listAggregates({ type: q.type, take: q.pageSize, cursor }, q),
      'aggregates',
    );
  }

  /**
   * `GET /v1/aggregates/{type}/{id}`: the current state, or the state at `version` (a whole number
   * >= 1, else `EDBX_ERR_CLIENT_CONFIG`, like every version argument).
   */
  async getAggregate(
    type: string,
    id: string,
    q: { readonly version?: number | undefined } & CallOptions = {},
  ): Promise<AggregateView> {
    const version = q.version === undefined ? undefined : whole(q.version, 'version', 1);
    return this.#get(SHAPES.aggregateView, PATHS.aggregate(type, id), { version }, q);
  }

  /** One page of `GET …/events`, oldest first. */
  async listEvents(type: string, id: string, q: PageQuery = {}, o?: CallOptions): Promise<EventPage> {
    return this.#get(
      SHAPES.eventPage,
      PATHS.events(type, id),
      { take: q.take, skip: q.skip, cursor: q.cursor },
      o,
    );
  }

  /**
   * Every event of an aggregate from `fromVersion` (default 1), oldest first, fetched in pages.
   *
   * @example
   * for await (const e of db.events('patient', 'p-001', { fromVersion: 10 })) apply(e);
   */
  async *events(
    type: string,
    id: string,
    q: {
      readonly fromVersion?: number | undefined;
      readonly pageSize?: number | undefined;
    } & CallOptions = {},
  ): AsyncGenerator<EventRecord> {
    const skip = q.fromVersion === undefined ? undefined : whole(q.fromVersion, 'fromVersion', 1) - 1;
    let page = await this.listEvents(type, id, { take: q.pageSize, skip }, q);
    yield* page.events;
    while (page.next_cursor !== null) {
      page = await this.listEvents(type, id, { take: q.pageSize, cursor: page.next_cursor }, q);
      yield* page.events;
    }
  }

  /** `GET …/events/recent?take=n`: the n newest events, newest first (server default 10). */
  async recentEvents(type: string, id: string, take?: number, o?: CallOptions): Promise<EventRecord[]> {
    return [...(await this.#get(SHAPES.recentEvents, PATHS.recent(type, id), { take }, o)).events];
  }

  /** `GET …/events/{version}`. */
  async getEvent(type: string, id: string, version: number, o?: CallOptions): Promise<EventRecord> {
    return this.#get(SHAPES.eventRecord, PATHS.event(type, id, whole(version, 'version', 1)), undefined, o);
  }

  /** `GET …/events/{version}/proof`: inclusion in the aggregate tree (current size or `treeSize`). */
  async getEventProof(
    type: string,
    id: string,
    version: number,
    q: { readonly treeSize?: number | undefined } & CallOptions = {},
  ): Promise<InclusionProof> {
    return this.#get(
      SHAPES.inclusionProof,
      PATHS.eventProof(type, id, whole(version, 'version', 1)),
      { tree_size: q.treeSize },
      q,
    );
  }

  /** `GET …/consistency?from&to`: the aggregate tree at `from` events is a prefix of it at `to`. */
  async getAggregateConsistency(
    type: string,
    id: string,
    from: number,
    to?: number,
    o?: CallOptions,
  ): Promise<ConsistencyProof> {
    return this.#get(SHAPES.consistencyProof, PATHS.consistency(type, id), { from, to }, o);
  }

  /** `GET …/verify`: the server recomputes the aggregate's tree from its stored events. */
  async verifyAggregate(type: string, id: string, o?: CallOptions): Promise<VerifyReport> {
    return this.#get(SHAPES.verifyReport, PATHS.verify(type, id), undefined, o);
  }

  // ------------------------------------------------------------------ writes

  /**
   * `POST …/events`. With `expected_version`, a concurrent writer makes it fail with
   * `EDBX_ERR_VERSION_CONFLICT`; with `event_id`, it is idempotent and retried on connection errors.
   * A payload number is sent as JavaScript prints it (`70.10` is `70.1`); NaN, ±Infinity and integers
   * beyond ±(2^53−1) are refused (`EDBX_ERR_CLIENT_CONFIG`): send exact values as strings.
   *
   * @example
   * await db.append('patient', 'p-001', { event_type: 'patient-updated', payload: { status: 'inactive' },
   *   expected_version: 4, event_id: 'import-7781' });
   */
  async append(type: string, id: string, body: AppendBody, o?: CallOptions): Promise<EventRecord> {
    return (await this.appendOutcome(type, id, body, o)).record;
  }

  /**
   * `append`, also saying whether the event is new (`duplicate: false`) or was already appended by
   * an earlier call with the same `event_id` (`duplicate: true`, nothing written): a command handler
   * retried after its own crash runs its once-only side effects only for a new event.
   *
   * @example
   * const { record, duplicate } = await db.appendOutcome('prescription', 'rx-7', {
   *   event_type: 'filled', payload: { units: 30 }, expected_version: 3, event_id: 'fill-rx-7-3' });
   * if (!duplicate) await notifyPatient(record);
   */
  async appendOutcome(type: string, id: string, body: AppendBody, o?: CallOptions): Promise<AppendOutcome> {
    checkPayload(body.payload, 'payload');
    const b = this.#withId(body);
    const res = await this.#t.request<EventRecord>(PATHS.events(type, id), {
      method: 'POST',
      body: b,
      idempotent: b.event_id !== undefined,
      signal: o?.signal,
      shape: SHAPES.eventRecord,
    });
    return { record: res.body, ...outcomeOf(res) };
  }

  /**
   * `POST /v1/transactions`: append to several aggregates atomically (all or none). Retried only
   * when every event carries an `event_id`. A refusal about one event names it: the error's
   * `problem.event` is `{ index, aggregate_type, aggregate_id }` and its message says
   * `events[1] (patient/p-031): …`.
   *
   * @example
   * try {
   *   await db.transaction([admitEvent, bedEvent]);
   * } catch (e) {
   *   if (isApiError(e) && e.problem.event) console.error(`event ${e.problem.event.index} refused: ${e.problem.detail}`);
   * }
   */
  async transaction(events: readonly TransactionEvent[], o?: CallOptions): Promise<EventRecord[]> {
    return (await this.transactionOutcome(events, o)).records;
  }

  /**
   * `transaction`, also saying whether its events were already appended by an earlier call with the
   * same `event_id`s (`duplicate: true`, nothing written; a transaction is a duplicate as a whole).
   *
   * @example
   * const { records, duplicate } = await db.transactionOutcome([fillEvent, stockEvent]);
   * if (!duplicate) await notifyPatient(records[0]!);
   */
  async transactionOutcome(
    events: readonly TransactionEvent[],
    o?: CallOptions,
  ): Promise<TransactionOutcome> {
    events.forEach((e, i) => checkPayload(e?.payload, `events[${i}].payload`));
    const body = { events: events.map((e) => this.#withId(e)) };
    const res = await this.#t.request<TransactionResult>(PATHS.transactions, {
      method: 'POST',
      body,
      idempotent: body.events.every((e) => e.event_id !== undefined),
      signal: o?.signal,
      shape: SHAPES.transactionResult,
    });
    return { records: [...res.body.events], ...outcomeOf(res) };
  }

  #withId<T extends AppendBody>(b: T): T {
    return this.#o.generateEventIds && b.event_id === undefined ? { ...b, event_id: randomUUID() } : b;
  }

  // ------------------------------------------------------------------ schemas

  /** One page of `GET /v1/schemas`: current versions, by aggregate type. */
  async listSchemas(q: PageQuery = {}, o?: CallOptions): Promise<SchemaList> {
    return this.#get(SHAPES.schemaList, PATHS.schemas, { take: q.take, skip: q.skip, cursor: q.cursor }, o);
  }

  /**
   * Every schema (current versions, by aggregate type), following `next_cursor`.
   *
   * @example
   * for await (const s of db.schemas()) console.log(s.aggregate, s.version);
   */
  async *schemas(
    q: { readonly pageSize?: number | undefined } & CallOptions = {},
  ): AsyncGenerator<SchemaDefinition> {
    yield* pages((cursor) => this.listSchemas({ take: q.pageSize, cursor }, q), 'schemas');
  }

  /** `GET /v1/schemas/{aggregate}` (`EDBX_ERR_SCHEMA_NOT_FOUND` when it has none). */
  async getSchema(aggregate: string, o?: CallOptions): Promise<SchemaDefinition> {
    return this.#get(SHAPES.schema, PATHS.schema(aggregate), undefined, o);
  }

  /** `GET /v1/schemas/{aggregate}/history`: every version, oldest first. */
  async getSchemaHistory(aggregate: string, o?: CallOptions): Promise<SchemaDefinition[]> {
    return [
      ...(await this.#get(SHAPES.schemaHistory, PATHS.schemaHistory(aggregate), undefined, o)).versions,
    ];
  }

  /** `POST /v1/schemas` (admin token), like `schema create`. Not retried. */
  async createSchema(body: SchemaCreateBody, o?: CallOptions): Promise<SchemaDefinition> {
    return this.#send(SHAPES.schema, 'POST', PATHS.schemas, body, o);
  }

  /** `POST /v1/schemas/{aggregate}/events` (admin token), like `schema add`. Not retried. */
  async addSchemaEvents(
    aggregate: string,
    events: readonly string[],
    o?: CallOptions,
  ): Promise<SchemaDefinition> {
    return this.#send(SHAPES.schema, 'POST', PATHS.schemaEvents(aggregate), { events }, o);
  }

  /** `PATCH /v1/schemas/{aggregate}` (admin token), like `schema alter`. Not retried. */
  async alterSchema(aggregate: string, body: SchemaAlterBody, o?: CallOptions): Promise<SchemaDefinition> {
    return this.#send(SHAPES.schema, 'PATCH', PATHS.schema(aggregate), body, o);
  }

  /** `DELETE /v1/schemas/{aggregate}/events/{event}` (admin token), like `schema remove`. Not retried. */
  async removeSchemaEvent(aggregate: string, event: string, o?: CallOptions): Promise<SchemaDefinition> {
    return this.#send(SHAPES.schema, 'DELETE', PATHS.schemaEvent(aggregate, event), undefined, o);
  }

  // ------------------------------------------------------------------ tokens (group admin)

  /**
   * One page of `GET /v1/tokens`: tokens with their status (never a secret), in a fixed order that is
   * not the order of creation.
   */
  async listTokens(q: PageQuery = {}, o?: CallOptions): Promise<TokenPage> {
    return this.#get(SHAPES.tokenPage, PATHS.tokens, { take: q.take, skip: q.skip, cursor: q.cursor }, o);
  }

  /**
   * Every token, following `next_cursor`.
   *
   * @example
   * for await (const t of admin.tokens()) if (t.status === 'expired') await admin.revokeToken(t.id);
   */
  async *tokens(q: { readonly pageSize?: number | undefined } & CallOptions = {}): AsyncGenerator<TokenView> {
    yield* pages((cursor) => this.listTokens({ take: q.pageSize, cursor }, q), 'tokens');
  }

  /** `POST /v1/tokens`: issue a token for one person; its secret is in the result only. Not retried. */
  async createToken(body: TokenCreateBody, o?: CallOptions): Promise<IssuedToken> {
    return this.#send(SHAPES.issuedToken, 'POST', PATHS.tokens, body, o);
  }

  /** `POST /v1/tokens/{id}/revoke`: revoke now (id from `listTokens`, or the token). Not retried. */
  async revokeToken(id: string, o?: CallOptions): Promise<TokenView> {
    return this.#send(SHAPES.token, 'POST', PATHS.tokenAction(id, 'revoke'), {}, o);
  }

  /** `POST /v1/tokens/{id}/refresh`: new lifetime (seconds from now) and/or write allowance. Not retried. */
  async refreshToken(
    id: string,
    body: { readonly expiration?: number | undefined; readonly limit?: number | undefined },
    o?: CallOptions,
  ): Promise<TokenView> {
    return this.#send(SHAPES.token, 'POST', PATHS.tokenAction(id, 'refresh'), body, o);
  }

  // ------------------------------------------------------------------ audit log (--audit or admin)

  /**
   * One page of `GET /v1/audit`: the audit log's entries (token, schema, archive, snapshot, config and
   * plugin changes), oldest first, as full `EventRecord`s. Give the same `since` and `from_position`
   * with each `cursor`; `from_position` (a ledger position) selects by commit order, `since` by time.
   * Not to be confused with `audit()`, which verifies the signed checkpoint. Needs a token issued with
   * `audit: true` (`--audit`) or an unrestricted admin token; a token with aggregate scopes gets the
   * entries about them, and the others as `withheld` (version, position and leaf hash only).
   *
   * @example
   * let page = await db.auditLog({ since: '2026-11-01' });
   * while (page.next_cursor) page = await db.auditLog({ since: '2026-11-01', cursor: page.next_cursor });
   */
  async auditLog(q: AuditQuery = {}, o?: CallOptions): Promise<AuditPage> {
    return this.#get(
      SHAPES.auditPage,
      PATHS.audit,
      { since: q.since, from_position: q.from_position, take: q.take, skip: q.skip, cursor: q.cursor },
      o,
    );
  }

  /**
   * `GET /v1/audit/verify`: the server recomputes the audit log's tree and checks the records it vouches
   * for (`eventdbx audit verify`). Resolves whether or not it verifies: check `ok`.
   */
  async verifyAuditLog(o?: CallOptions): Promise<AuditVerification> {
    return this.#get(SHAPES.auditVerification, PATHS.auditVerify, undefined, o);
  }

  // ------------------------------------------------------------------ plugins (admin)

  /** `GET /v1/plugins`: every plugin (secrets masked) and the `plugin map` column types. */
  async listPlugins(o?: CallOptions): Promise<PluginList> {
    return this.#get(SHAPES.pluginList, PATHS.plugins, undefined, o);
  }

  /** `GET /v1/plugins/status`: each plugin's cursor, lag, retries, last error and dead letters. */
  async pluginStatus(o?: CallOptions): Promise<PluginStatusList> {
    return this.#get(SHAPES.pluginStatus, PATHS.pluginStatus, undefined, o);
  }

  /**
   * `GET /v1/plugins/{name}/dead-letters`: the events a plugin gave up on, oldest first, a page of at
   * most `take` (default and most 1000) from position `from` on; pass the page's `next_from` as `from`
   * for the next one (null after the last).
   */
  async pluginDeadLetters(
    name: string,
    q: { readonly take?: number | undefined; readonly from?: number | undefined } & CallOptions = {},
  ): Promise<DeadLetterPage> {
    return this.#get(SHAPES.deadLetters, PATHS.pluginDeadLetters(name), { take: q.take, from: q.from }, q);
  }

  /**
   * `POST /v1/plugins/{name}/replay`: deliver again from a position (default 1). Not retried. With
   * `{ rebuild: true }` the destination is cleared first (its tables dropped, its files moved aside),
   * then everything is delivered: the repair for `EDBX_ERR_PLUGIN_DIVERGED`, which a replay without it
   * throws (409) while the destination holds events the store does not have.
   *
   * @example
   * await db.replayPlugin('postgres', undefined, { rebuild: true });
   */
  async replayPlugin(
    name: string,
    from?: number,
    o?: CallOptions & { readonly rebuild?: boolean | undefined },
  ): Promise<ReplayResult> {
    const { rebuild, ...call } = o ?? {};
    return this.#send(
      SHAPES.replayResult,
      'POST',
      PATHS.pluginAction(name, 'replay'),
      { ...(from === undefined ? {} : { from }), ...(rebuild ? { rebuild: true } : {}) },
      call,
    );
  }

  /**
   * `POST /v1/plugins/{name}/retry`: deliver the dead letters again now. Not retried. Throws
   * `EDBX_ERR_PLUGIN_DIVERGED` (409) while the destination holds events the store does not have.
   */
  async retryPlugin(name: string, o?: CallOptions): Promise<RetryResult> {
    return this.#send(SHAPES.retryResult, 'POST', PATHS.pluginAction(name, 'retry'), {}, o);
  }

  async #send<T>(
    shape: Shape<T>,
    method: 'POST' | 'PATCH' | 'DELETE',
    path: string,
    body: unknown,
    o?: CallOptions,
  ): Promise<T> {
    return (await this.#t.request<T>(path, { method, body, idempotent: false, signal: o?.signal, shape }))
      .body;
  }

  // ------------------------------------------------------------------ ledger and verification

  /** `GET /v1/checkpoint`: the latest signed checkpoint, unverified (see `audit()`). */
  async getCheckpoint(o?: CallOptions): Promise<CheckpointView> {
    return this.#get(SHAPES.checkpoint, PATHS.checkpoint, undefined, o);
  }

  /** `GET /v1/ledger/consistency?from&to`: the ledger at `from` events is a prefix of it at `to`. */
  async getLedgerConsistency(from: number, to?: number, o?: CallOptions): Promise<ConsistencyProof> {
    return this.#get(SHAPES.consistencyProof, PATHS.ledgerConsistency, { from, to }, o);
  }

  /**
   * `GET /v1/ledger/proof?position&tree_size`: inclusion of the event at `position` in the ledger tree
   * of `treeSize` events (default: the current size), as leaf `position − 1`. Unverified:
   * `verifyLedgerInclusion` fetches and checks it. A token with aggregate scopes may ask for the
   * positions of their events (and, with `audit`, of audit log entries): others are refused with
   * `EDBX_ERR_TOKEN_OUT_OF_SCOPE`.
   *
   * @example
   * const p = await db.getLedgerProof(event.position, { treeSize: 120 });
   */
  async getLedgerProof(
    position: number,
    q: { readonly treeSize?: number | undefined } & CallOptions = {},
  ): Promise<InclusionProof> {
    return this.#get(
      SHAPES.inclusionProof,
      PATHS.ledgerProof,
      { position: whole(position, 'position', 1), tree_size: q.treeSize },
      q,
    );
  }

  /**
   * Tie an event to a signed checkpoint: recompute its leaf hash from its content and check, with the
   * ledger proof (`GET /v1/ledger/proof`), that it is leaf `position − 1` of the ledger tree whose size
   * and root `checkpoint` gives. A checkpoint that carries its signed `note` (`audit()`'s `current`, the
   * `.checkpoint` of `eventdbx checkpoint --json`) is verified first with the pinned key (else the one
   * saved with the trusted checkpoint), and its fields must agree with the note: the event is then
   * proven authentic (`checkpoint_verified: true`). A bare `{ size, root }` is taken as given
   * (`checkpoint_verified: false`). A bad signature is an `EventDbxVerificationError`
   * (`EDBX_ERR_CHECKPOINT_SIGNATURE`, or `EDBX_ERR_INVALID_CHECKPOINT` for fields that disagree with the
   * note); a signed checkpoint with no key to verify it, or an event newer than the checkpoint, is an
   * `EDBX_ERR_CLIENT_CONFIG`; a proof that does not verify is `EDBX_ERR_PROOF_INVALID`.
   *
   * @example
   * const { current } = await db.audit();
   * await db.verifyLedgerInclusion(await db.getEvent('patient', 'p-001', 3), current);
   */
  async verifyLedgerInclusion(
    event: EventRecord,
    checkpoint: TreeHead & { readonly note?: string | undefined; readonly signature?: string | undefined },
    o?: CallOptions,
  ): Promise<VerifiedLedgerInclusion> {
    const position = whole(
      (event as Partial<EventRecord> | null)?.position as number,
      'the event position',
      1,
    );
    const { head, verified } = await ledgerCheckpoint(checkpoint, {
      publicKey: this.#publicKey,
      store: this.#trust,
    });
    if (position > head.size)
      throw new EventDbxConfigError(
        `the event at position ${position} is newer than the checkpoint of ${head.size} events: audit() again for one that covers it`,
      );
    // Unchecked here: checkLedgerInclusion checks every field it uses.
    const proof = await this.#unverified(PATHS.ledgerProof, { position, tree_size: head.size }, o);
    return { ...checkLedgerInclusion({ event, proof, checkpoint: head }), checkpoint_verified: verified };
  }

  /**
   * Verify one event against its aggregate's Merkle tree: recompute its leaf hash from its content,
   * check its inclusion proof against the aggregate's root, and check that its `merkle_root` is a
   * prefix root of that tree. Without `tree`, the root is the one the server sends now, so this proves
   * that the server's answers agree with each other and with the event's content, not that they are
   * authentic: for that, pass a `tree` you verified before, or tie the event to a signed checkpoint
   * (`verifyLedgerInclusion`). Throws `EventDbxVerificationError` (`EDBX_ERR_PROOF_INVALID`) when
   * anything does not add up.
   *
   * @example
   * const { event, tree } = await db.verifyEvent('patient', 'p-001', 3);
   */
  async verifyEvent(
    type: string,
    id: string,
    version: number,
    q: { readonly tree?: TreeHead | undefined } & CallOptions = {},
  ): Promise<VerifiedEvent> {
    whole(version, 'version', 1);
    // The answers go to checkEventProof as they came: it checks every field it uses, so that any
    // falsified answer, whatever its shape, is a verification error.
    let tree = q.tree;
    if (!tree) {
      const view = await this.#unverified(PATHS.aggregate(type, id), undefined, q);
      const v = view as Partial<AggregateView> | null;
      tree = { size: v?.version as number, root: v?.merkle_root as string };
    }
    const size = tree.size;
    const [event, proof, consistency] = await Promise.all([
      this.#unverified(PATHS.event(type, id, version), undefined, q),
      version <= size
        ? this.#unverified(PATHS.eventProof(type, id, version), { tree_size: size }, q)
        : undefined,
      version < size
        ? this.#unverified(PATHS.consistency(type, id), { from: version, to: size }, q)
        : undefined,
    ]);
    return checkEventProof({ type, id, version, event, proof, tree, consistency });
  }

  /**
   * Audit the ledger: fetch the latest signed checkpoint, check its signature with the pinned key,
   * prove by a consistency proof that it extends the last trusted checkpoint, and only then save it as
   * trusted. A truncated or rewritten history, a bad signature or a bad proof throws
   * `EventDbxVerificationError`; the trusted checkpoint is then left as it was.
   *
   * @example
   * const db = new EventDbxClient({ publicKey: pem, trust: './eventdbx-trusted.json' });
   * const { previous, current } = await db.audit();
   */
  async audit(o: AuditOptions = {}): Promise<AuditResult> {
    const store = this.#trust;
    if (!store)
      throw new EventDbxConfigError(
        'audit() needs a trusted-checkpoint store: pass `trust` (a file path or a CheckpointStore)',
      );
    const run = () =>
      runAudit(
        {
          store,
          publicKey: this.#publicKey,
          // Unchecked here: runAudit and the verifiers check every field they use.
          checkpoint: () => this.#unverified(PATHS.checkpoint, undefined, o),
          consistency: (from, to) => this.#unverified(PATHS.ledgerConsistency, { from, to }, o),
          now: () => new Date(),
        },
        o,
      );
    // One audit at a time per client, so the trusted checkpoint only moves forward.
    const result = this.#audits.then(run, run);
    this.#audits = result.catch(() => {});
    return result;
  }

  // ------------------------------------------------------------------ stream

  /**
   * Live events in position order: catch up from `from`, then follow new commits, reconnecting and
   * resuming on its own; each event is yielded exactly once. Break out of the loop or abort `signal`
   * to stop. System events (types starting with '$') are never streamed; a scoped token sees only its
   * aggregates. A bad `from` is an `EDBX_ERR_CLIENT_CONFIG` from the first `next()`. `onCaughtUp`
   * says when everything up to the store's last position has been yielded (a rebuild's end).
   *
   * @example
   * for await (const e of db.subscribe({ from: 1, aggregate: 'patient' })) project(e);
   * // rebuild, then stop: the loop ends once caught up
   * const done = new AbortController();
   * for await (const e of db.subscribe({ from: 1, signal: done.signal, onCaughtUp: () => done.abort() }))
   *   project(e);
   */
  subscribe(o: SubscribeOptions = {}): AsyncGenerator<EventRecord, void, undefined> {
    return subscribe(this.#t, o);
  }
}
