/**
 * The schema feature of the server: `GET /v1/schemas` and `GET /v1/schemas/{aggregate}` (any valid
 * token; one limited to some aggregates reads only their types' schemas), the history of a schema, and admin-only equivalents of the `schema` commands for tooling.
 * Changes apply to the very next append (see src/store/schemas.ts).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { err } from '../../core/errors.js';
import { aggregateType } from '../../core/names.js';
import { ADMIN_WRITE, issuerOf } from '../../core/tokens.js';
import type { WriteContext } from '../../store/types.js';
import {
  addSchemaEvents,
  alterSchema,
  createSchema,
  getSchema,
  listSchemas,
  removeSchemaEvent,
  schemaHistory,
} from '../../store/schemas.js';
import type { RouteContext } from '../app.js';
import type { Feature } from '../features.js';
import { longRead } from '../in-flight.js';
import { DEFAULT_PAGE, MAX_PAGE, type Query, decodeCursor, isKeyCursor, num, pageOf } from '../paging.js';
import { errors as allErrors, nextCursor, page } from '../schemas.js';

const str = { type: 'string' } as const;
const int = { type: 'integer' } as const;
const names = { type: 'array', items: str, minItems: 1 } as const;
// A JSON number, as every other count of the API: "5" is not silently read as 5.
const threshold = {
  type: 'integer',
  minimum: 0,
  description: 'automatic snapshot every n events (0 = off)',
} as const;
const errors = {
  400: allErrors[400],
  401: allErrors[401],
  403: allErrors[403],
  404: allErrors[404],
  409: allErrors[409],
} as const;

/** One version of a schema, as every schema endpoint returns it. */
const schema = {
  type: 'object',
  properties: {
    aggregate: str,
    version: { ...int, description: 'bumped by every change; earlier versions are kept (see /history)' },
    events: {
      type: 'object',
      description: 'event type → fields it may set (empty = any field)',
      additionalProperties: { type: 'object', properties: { fields: { type: 'array', items: str } } },
    },
    locked: { type: 'boolean', description: 'true: no event may be appended to this aggregate type' },
    locked_fields: { type: 'array', items: str, description: 'fields no event may set' },
    snapshot_threshold: { ...int, description: 'automatic snapshot every n events (0 = off)' },
    created_at: str,
    updated_at: str,
    updated_by: { type: 'object', properties: { group: str, user: str } },
    change: { ...str, description: 'what this version changed' },
  },
} as const;
const aggregateParams = {
  type: 'object',
  properties: { aggregate: str },
  required: ['aggregate'],
} as const;

type Params = { aggregate: string };

async function schemaRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const { store } = ctx;
  const read = (req: { headers: { authorization?: string } }) =>
    ctx.auth(req.headers.authorization, { write: false });
  /** A read of one type's schema: a token limited to some aggregates reads only their types'. */
  const readSchemaOf = (req: { headers: { authorization?: string } }, aggregate: string): string => {
    read(req);
    const type = aggregateType(aggregate);
    ctx.auth(req.headers.authorization, { write: false, schemaOf: type });
    return type;
  };
  const config = { access: ADMIN_WRITE };
  const admin = (req: FastifyRequest): WriteContext => {
    const t = ctx.authorized(req);
    if (ctx.draining()) throw err('EDBX_ERR_SHUTTING_DOWN');
    return { issuedBy: issuerOf(t) };
  };

  app.get<{ Querystring: Query }>(
    '/v1/schemas',
    {
      schema: {
        summary: 'List the schema definitions (current versions) by aggregate type, a page at a time',
        description:
          'A token limited to some aggregates (--aggregate) lists only the schemas of their types.',
        querystring: page,
        response: {
          200: {
            type: 'object',
            properties: { schemas: { type: 'array', items: schema }, next_cursor: nextCursor },
          },
          ...errors,
        },
      },
    },
    async (req, reply) => {
      const t = read(req);
      const take = num(req.query, 'take', DEFAULT_PAGE, 1, MAX_PAGE);
      const after = decodeCursor(req.query.cursor, isKeyCursor)?.k;
      const skip = num(req.query, 'skip', 0);
      const schemas = await listSchemas(store, {
        ...(t.scopes.length > 0 ? { types: t.scopes.map((s) => s.split('/')[0]!) } : {}),
        after,
        skip,
        take: take + 1,
        signal: await longRead(reply),
      });
      const { shown, next_cursor } = pageOf(schemas, take, (s) => ({ k: s.aggregate }));
      return { schemas: shown, next_cursor };
    },
  );

  app.get<{ Params: Params }>(
    '/v1/schemas/:aggregate',
    {
      schema: {
        summary: 'The current schema of an aggregate type',
        params: aggregateParams,
        response: { 200: schema, ...errors },
      },
    },
    async (req) => getSchema(store, readSchemaOf(req, req.params.aggregate)),
  );

  app.get<{ Params: Params }>(
    '/v1/schemas/:aggregate/history',
    {
      schema: {
        summary: 'Every version of a schema, oldest first',
        params: aggregateParams,
        response: {
          200: {
            type: 'object',
            properties: { aggregate: str, versions: { type: 'array', items: schema } },
          },
          ...errors,
        },
      },
    },
    async (req) => {
      const type = readSchemaOf(req, req.params.aggregate);
      return { aggregate: type, versions: await schemaHistory(store, type) };
    },
  );

  app.post<{ Body: { aggregate: string; events: string[]; snapshot_threshold?: number | string } }>(
    '/v1/schemas',
    {
      schema: {
        summary: 'Create a schema (admin; like `schema create`); 409 if the aggregate type has one',
        body: {
          type: 'object',
          required: ['aggregate', 'events'],
          additionalProperties: false,
          properties: { aggregate: str, events: names, snapshot_threshold: threshold },
        },
        response: { 201: schema, ...errors },
      },
      config,
    },
    async (req, reply) => {
      const by = admin(req);
      const r = await createSchema(
        store,
        {
          aggregate: req.body.aggregate,
          events: req.body.events,
          snapshotThreshold: req.body.snapshot_threshold,
        },
        by,
      );
      return reply.code(201).send(r.schema);
    },
  );

  app.post<{ Params: Params; Body: { events: string[] } }>(
    '/v1/schemas/:aggregate/events',
    {
      schema: {
        summary: 'Declare more events (admin; like `schema add`)',
        params: aggregateParams,
        body: {
          type: 'object',
          required: ['events'],
          additionalProperties: false,
          properties: { events: names },
        },
        response: { 200: schema, ...errors },
      },
      config,
    },
    async (req) => {
      const by = admin(req);
      return (await addSchemaEvents(store, req.params.aggregate, req.body.events, by)).schema;
    },
  );

  app.patch<{
    Params: Params;
    Body: {
      event?: string;
      snapshot_threshold?: number | string;
      lock?: boolean;
      field?: string;
      add?: string[];
      remove?: string[];
    };
  }>(
    '/v1/schemas/:aggregate',
    {
      schema: {
        summary:
          'Change a schema (admin; like `schema alter`): event + add/remove edit its fields; lock without field locks the aggregate type; field + lock locks one field',
        params: aggregateParams,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            event: str,
            snapshot_threshold: threshold,
            lock: { type: 'boolean' },
            field: str,
            add: names,
            remove: names,
          },
        },
        response: { 200: schema, ...errors },
      },
      config,
    },
    async (req) => {
      const by = admin(req);
      const b = req.body;
      const r = await alterSchema(
        store,
        req.params.aggregate,
        {
          event: b.event,
          snapshotThreshold: b.snapshot_threshold,
          lock: b.lock,
          field: b.field,
          add: b.add,
          remove: b.remove,
        },
        by,
      );
      return r.schema;
    },
  );

  app.delete<{ Params: Params & { event: string } }>(
    '/v1/schemas/:aggregate/events/:event',
    {
      schema: {
        summary: 'Stop accepting an event (admin; like `schema remove`); the last event cannot be removed',
        params: {
          type: 'object',
          properties: { aggregate: str, event: str },
          required: ['aggregate', 'event'],
        },
        response: { 200: schema, ...errors },
      },
      config,
    },
    async (req) => {
      const by = admin(req);
      return (await removeSchemaEvent(store, req.params.aggregate, req.params.event, by)).schema;
    },
  );
}

export const schemaFeature: Feature = {
  name: 'schema',
  routes: (app, ctx) => schemaRoutes(app, ctx),
};
