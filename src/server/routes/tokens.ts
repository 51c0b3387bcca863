/** Token management over HTTP for group `admin` (the same operations as `eventdbx token …`). */
import type { FastifyInstance } from 'fastify';
import { err } from '../../core/errors.js';
import { ADMIN_WRITE, type TokenRecord, describeToken, issuerOf } from '../../core/tokens.js';
import {
  TOKEN_RANGES,
  createToken,
  refreshToken,
  revokeToken,
  tokenPosition,
  tokenRecords,
} from '../../store/tokens.js';
import type { Feature } from '../features.js';
import { longRead } from '../in-flight.js';
import { DEFAULT_PAGE, MAX_PAGE, type Query, decodeCursor, isKeyCursor, num, pageOf } from '../paging.js';
import { errors, nextCursor, page } from '../schemas.js';

const str = { type: 'string' } as const;
const int = { type: 'integer', minimum: 1 } as const;
const seconds = { ...int, maximum: TOKEN_RANGES.expiration.max } as const;
const tokenView = {
  type: 'object',
  properties: {
    token: { ...str, description: 'the secret, returned once by POST /v1/tokens only' },
    id: str,
    group: str,
    user: str,
    status: { type: 'string', enum: ['active', 'expired', 'revoked', 'exhausted'] },
    expires_at: { type: ['string', 'null'] },
    keep_alive: { type: 'boolean' },
    limit: { type: ['integer', 'null'] },
    remaining: { type: ['integer', 'null'] },
    read_only: { type: 'boolean' },
    scopes: { type: 'array', items: str },
    audit: {
      type: 'boolean',
      description: 'may read the audit log (what its scopes cover of it) and prove its entries',
    },
    created_at: str,
    revoked_at: { type: ['string', 'null'] },
  },
} as const;
const idParams = {
  type: 'object',
  properties: { id: { ...str, description: 'token id from the list, or the token' } },
  required: ['id'],
} as const;

export const tokenFeature: Feature = {
  name: 'tokens',
  async routes(app: FastifyInstance, ctx) {
    // The hash lets a token it issues or refreshes be bound by its own expiry (refuseOutliving).
    const issuer = (t: TokenRecord) => ({ issuedBy: issuerOf(t), tokenHash: t.hash });
    const config = { access: ADMIN_WRITE };
    app.get<{ Querystring: Query }>(
      '/v1/tokens',
      {
        schema: {
          summary: 'List tokens (admin), a page at a time',
          description:
            'In a fixed order that is not the order of creation; follow `next_cursor` for the next page.',
          querystring: page,
          response: {
            200: {
              type: 'object',
              properties: { tokens: { type: 'array', items: tokenView }, next_cursor: nextCursor },
            },
            ...errors,
          },
        },
      },
      async (req, reply) => {
        ctx.auth(req.headers.authorization, { write: false, admin: true });
        const take = num(req.query, 'take', DEFAULT_PAGE, 1, MAX_PAGE);
        const after = decodeCursor(req.query.cursor, isKeyCursor)?.k;
        const skip = num(req.query, 'skip', 0);
        const records = await tokenRecords(ctx.store, {
          after,
          skip,
          take: take + 1,
          signal: await longRead(reply),
        });
        const { shown, next_cursor } = pageOf(records, take, (t) => ({ k: tokenPosition(ctx.store, t) }));
        const now = ctx.store.env.now();
        return { tokens: shown.map((t) => describeToken(t, now)), next_cursor };
      },
    );
    app.post<{
      Body: {
        group: string;
        user: string;
        expiration?: number;
        limit?: number;
        keep_alive?: boolean;
        read_only?: boolean;
        aggregates?: string[];
        audit?: boolean;
      };
    }>(
      '/v1/tokens',
      {
        schema: {
          summary: 'Issue a token for one person (admin); the secret is in the response only',
          body: {
            type: 'object',
            required: ['group', 'user'],
            additionalProperties: false,
            properties: {
              group: str,
              user: str,
              expiration: seconds,
              limit: int,
              keep_alive: { type: 'boolean' },
              read_only: { type: 'boolean' },
              aggregates: { type: 'array', items: str, maxItems: 100 },
              audit: {
                type: 'boolean',
                description:
                  'the token may read GET /v1/audit and /v1/audit/verify and prove audit entries in the ledger ' +
                  '(`token generate --audit`); with `aggregates`, only the entries about them',
              },
            },
          },
          response: { 201: tokenView, ...errors },
        },
        config,
      },
      async (req, reply) => {
        const wctx = issuer(ctx.authorized(req));
        const b = req.body;
        const t = await createToken(
          ctx.store,
          {
            group: b.group,
            user: b.user,
            expiration: b.expiration,
            limit: b.limit,
            keepAlive: b.keep_alive,
            readOnly: b.read_only,
            scopes: b.aggregates,
            audit: b.audit,
          },
          wctx,
        );
        return reply.code(201).send(t);
      },
    );
    app.post<{ Params: { id: string } }>(
      '/v1/tokens/:id/revoke',
      {
        schema: {
          summary: 'Revoke a token now (admin)',
          params: idParams,
          response: { 200: tokenView, ...errors },
        },
        config,
      },
      async (req) => {
        // No body is needed; like every route, refuse fields it does not define (a body schema would
        // also refuse the usual empty POST).
        const extra = Object.keys((req.body ?? {}) as object)[0];
        if (extra !== undefined)
          throw err('EDBX_ERR_INVALID_ARGUMENT', {
            name: 'body',
            value: '',
            reason: `must NOT have additional properties (unknown field ${JSON.stringify(extra)})`,
          });
        return revokeToken(ctx.store, req.params.id, issuer(ctx.authorized(req)));
      },
    );
    app.post<{ Params: { id: string }; Body: { expiration?: number; limit?: number } }>(
      '/v1/tokens/:id/refresh',
      {
        schema: {
          summary: 'Extend the lifetime and/or write allowance of a token (admin)',
          params: idParams,
          body: {
            type: 'object',
            additionalProperties: false,
            properties: { expiration: seconds, limit: int },
          },
          response: { 200: tokenView, ...errors },
        },
        config,
      },
      async (req) =>
        refreshToken(
          ctx.store,
          req.params.id,
          { expiration: req.body?.expiration, limit: req.body?.limit },
          issuer(ctx.authorized(req)),
        ),
    );
  },
};
