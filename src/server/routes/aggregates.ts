/** Aggregate routes: the spec's endpoints plus pagination, single events, proofs and transactions. */
import type { FastifyInstance, FastifySchemaValidationError } from 'fastify';
import { atEvent, err, isEventDbxError } from '../../core/errors.js';
import { eventRef, version as parseVersion } from '../../core/names.js';
import { type Access, type TokenRecord, issuerOf } from '../../core/tokens.js';
import { aggregateConsistencyProof, eventInclusionProof, verifyNamed } from '../../store/index.js';
import type { AppendRequest } from '../../store/types.js';
import type { RouteContext } from '../app.js';
import { longRead } from '../in-flight.js';
import { expectedVersionOf } from '../preconditions.js';
import {
  DEFAULT_PAGE,
  MAX_PAGE,
  type Query,
  decodeCursor,
  pageOf,
  isKeyCursor,
  isVersionCursor,
  num,
} from '../paging.js';
import * as S from '../schemas.js';
import { fromValidation } from '../validation.js';

type Params = { aggregate_type: string; aggregate_id: string };

/**
 * What an append needs of its token, from its path alone: checked before its body is read. The write
 * allowance is the transaction's to check (an idempotent retry writes nothing and costs nothing).
 */
const append = (p: Params): Access => ({
  write: true,
  aggregate: { type: p.aggregate_type, id: p.aggregate_id },
  allowanceChecked: 'by-transaction',
});

/** A validation failure of a transaction's body, naming the event it is about (`/events/1/…`). */
function transactionValidation(
  e: { readonly validation: readonly FastifySchemaValidationError[]; readonly validationContext: string },
  body: unknown,
): unknown {
  const v = e.validation[0]!;
  const refused = fromValidation(v, e.validationContext);
  const index = /^\/events\/(\d+)(?:\/|$)/.exec(v.instancePath)?.[1];
  if (index === undefined) return refused;
  const events = (body as { events?: unknown } | null)?.events;
  const event = Array.isArray(events) ? (events[Number(index)] as Record<string, unknown>) : undefined;
  return atEvent(refused, eventRef(Number(index), event));
}

export async function aggregateRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const { store } = ctx;
  const read = (req: { headers: { authorization?: string } }, p?: Params): TokenRecord =>
    ctx.auth(req.headers.authorization, {
      write: false,
      ...(p ? { aggregate: { type: p.aggregate_type, id: p.aggregate_id } } : {}),
    });
  const writeCtx = (t: TokenRecord) => ({ issuedBy: issuerOf(t), tokenHash: t.hash });
  const refuseWhileDraining = () => {
    if (ctx.draining()) throw err('EDBX_ERR_SHUTTING_DOWN');
  };

  app.get<{ Querystring: Query }>('/v1/aggregates', { schema: S.listAggregates }, async (req, reply) => {
    const t = read(req);
    const take = num(req.query, 'take', DEFAULT_PAGE, 1, MAX_PAGE);
    const skip = num(req.query, 'skip', 0);
    const after = decodeCursor(req.query.cursor, isKeyCursor)?.k;
    const signal = await longRead(reply);
    // Scoped tokens see only the aggregates they may read (their `skip` counts those only); the
    // store reads only what the scopes cover.
    const items = await store.list({
      skip,
      take: take + 1,
      ...(after ? { after } : {}),
      ...(req.query.type ? { type: req.query.type } : {}),
      ...(t.scopes.length > 0 ? { scopes: t.scopes } : {}),
      signal,
    });
    const { shown, next_cursor } = pageOf(items, take, (a) => ({
      k: `${a.aggregate_type}/${a.aggregate_id}`,
    }));
    return { aggregates: shown, next_cursor };
  });

  app.get<{ Params: Params; Querystring: Query }>(
    '/v1/aggregates/:aggregate_type/:aggregate_id',
    { schema: S.getAggregate },
    async (req, reply) => {
      read(req, req.params);
      const version = req.query.version === undefined ? undefined : parseVersion(req.query.version);
      // Only a past version is a long read (a fold of events); the current state is in memory.
      const view = await store.aggregate(
        req.params.aggregate_type,
        req.params.aggregate_id,
        version === undefined ? {} : { version, signal: await longRead(reply) },
      );
      // The version, as POST …/events answers it: what `If-Match` takes for the next append.
      if (version === undefined) reply.header('etag', `"${view.version}"`);
      return view;
    },
  );

  app.get<{ Params: Params; Querystring: Query }>(
    '/v1/aggregates/:aggregate_type/:aggregate_id/events',
    { schema: S.listEvents },
    async (req, reply) => {
      read(req, req.params);
      const take = num(req.query, 'take', DEFAULT_PAGE, 1, MAX_PAGE);
      const skip = num(req.query, 'skip', 0);
      const after = decodeCursor(req.query.cursor, isVersionCursor)?.v ?? 0;
      const signal = await longRead(reply);
      const events = await store.events(req.params.aggregate_type, req.params.aggregate_id, {
        fromVersion: after + 1,
        skip,
        take: take + 1,
        signal,
      });
      const { shown, next_cursor } = pageOf(events, take, (e) => ({ v: e.version }));
      return { events: shown, next_cursor };
    },
  );

  app.get<{ Params: Params; Querystring: Query }>(
    '/v1/aggregates/:aggregate_type/:aggregate_id/events/recent',
    { schema: S.recentEvents },
    async (req, reply) => {
      read(req, req.params);
      const take = num(req.query, 'take', 10, 1, MAX_PAGE);
      const signal = await longRead(reply);
      return {
        events: await store.events(req.params.aggregate_type, req.params.aggregate_id, {
          reverse: true,
          take,
          signal,
        }),
      };
    },
  );

  app.get<{ Params: Params & { version: string } }>(
    '/v1/aggregates/:aggregate_type/:aggregate_id/events/:version',
    { schema: S.getEvent },
    async (req) => {
      read(req, req.params);
      return store.event(
        req.params.aggregate_type,
        req.params.aggregate_id,
        parseVersion(req.params.version),
      );
    },
  );

  app.get<{ Params: Params & { version: string }; Querystring: Query }>(
    '/v1/aggregates/:aggregate_type/:aggregate_id/events/:version/proof',
    { schema: S.eventProof },
    async (req) => {
      read(req, req.params);
      const v = parseVersion(req.params.version);
      return eventInclusionProof(
        store,
        req.params.aggregate_type,
        req.params.aggregate_id,
        v,
        req.query.tree_size,
      );
    },
  );

  app.get<{ Params: Params; Querystring: Query }>(
    '/v1/aggregates/:aggregate_type/:aggregate_id/consistency',
    { schema: S.consistency },
    async (req) => {
      read(req, req.params);
      if (req.query.from === undefined)
        throw err('EDBX_ERR_INVALID_PROOF_RANGE', { reason: 'from is required (?from=m&to=n)' });
      return aggregateConsistencyProof(
        store,
        req.params.aggregate_type,
        req.params.aggregate_id,
        req.query.from,
        req.query.to,
      );
    },
  );

  app.get<{ Params: Params }>(
    '/v1/aggregates/:aggregate_type/:aggregate_id/verify',
    { schema: S.verify },
    async (req, reply) => {
      read(req, req.params);
      const signal = await longRead(reply);
      return verifyNamed(store, req.params.aggregate_type, req.params.aggregate_id, signal);
    },
  );

  app.post<{
    Params: Params;
    Body: {
      event_type: string;
      payload: Record<string, unknown>;
      expected_version?: number;
      event_id?: string;
    };
  }>(
    '/v1/aggregates/:aggregate_type/:aggregate_id/events',
    { schema: S.appendEvent, config: { access: append } },
    async (req, reply) => {
      const t = ctx.authorized(req);
      refuseWhileDraining();
      const body = req.body;
      const appendReq: AppendRequest = {
        aggregate_type: req.params.aggregate_type,
        aggregate_id: req.params.aggregate_id,
        event_type: body.event_type,
        payload: body.payload,
        expected_version: expectedVersionOf(req.headers, body.expected_version),
        event_id: body.event_id,
      };
      try {
        const [r] = await store.appendDetailed([appendReq], writeCtx(t));
        return reply
          .code(r!.duplicate ? 200 : 201)
          .header('ETag', `"${r!.record.version}"`)
          .send(r!.record);
      } catch (e) {
        // The stored version, as GET serves it: what the next If-Match takes once the client has rebased.
        if (isEventDbxError(e, 'EDBX_ERR_VERSION_CONFLICT'))
          void reply.header('ETag', `"${String(e.params.current)}"`);
        throw e;
      }
    },
  );

  app.post<{ Body: { events: Array<AppendRequest> } }>(
    '/v1/transactions',
    // Its own validation failures too name the event they are about (`events[1] (patient/p-031): …`).
    {
      schema: S.transaction,
      attachValidation: true,
      config: {
        withoutPreconditions: 'put expected_version on each event instead',
        // Each event's aggregate is checked against the token's scopes by the transaction.
        access: { write: true, allowanceChecked: 'by-transaction' },
      },
    },
    async (req, reply) => {
      if (req.validationError) throw transactionValidation(req.validationError, req.body);
      const t = ctx.authorized(req);
      refuseWhileDraining();
      const results = await store.appendDetailed(req.body.events, writeCtx(t), { nameEvents: true });
      return reply
        .code(results.every((r) => r.duplicate) ? 200 : 201)
        .send({ events: results.map((r) => r.record) });
    },
  );
}
