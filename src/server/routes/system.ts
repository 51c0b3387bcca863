/** Health, metrics and the OpenAPI document. */
import type { FastifyInstance } from 'fastify';
import type { Health } from '../../protocol/index.js';
import type { RouteContext } from '../app.js';
import { WRITES_REFUSED, publicDetail } from '../../core/errors.js';
import { errors } from '../schemas.js';

export async function systemRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const health = {
    status: { type: 'string' },
    version: { type: 'string' },
    restrict: { type: 'string' },
    uptime_seconds: { type: 'number' },
    events: { type: 'integer' },
    layout: { type: 'integer' },
  } as const;
  app.get(
    '/health',
    {
      schema: {
        summary: 'Liveness probe (no token needed)',
        description:
          '200 with `status: "ok"`; 200 with `status: "degraded"` while the server serves, writes included, ' +
          'but an operator must act (a read met damaged files: `EDBX_ERR_STORE_DAMAGED`; the acknowledged-head ' +
          'file cannot be written: `EDBX_ERR_ACKNOWLEDGED_HEAD`), with the `code` and `detail`; 503 with ' +
          '`status: "failing"` when the server cannot write (a write failed: it refuses every write until it ' +
          'is restarted), with the `code` and `detail` of the failure.',
        security: [],
        response: {
          200: {
            type: 'object',
            properties: { ...health, code: { type: 'string' }, detail: { type: 'string' } },
          },
          503: {
            description: 'The server refuses writes until it is restarted (or is shutting down)',
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  properties: { ...health, code: { type: 'string' }, detail: { type: 'string' } },
                },
              },
            },
          },
        },
      },
    },
    async (_req, reply) => {
      const body = {
        version: ctx.options.version,
        restrict: ctx.options.restrict,
        // How long the process has run, by the monotonic clock: a step of the wall clock (NTP, a VM
        // resumed) never makes it negative or jump (QA time finding 3); monitors detect restarts by it.
        uptime_seconds: Math.round(process.uptime()),
        events: ctx.store.size,
        layout: ctx.store.layout,
      };
      const failure = ctx.store.writeFailure;
      const degraded = failure ? undefined : ctx.store.degradation;
      // Serving, writes included, so still 200 (a load balancer keeps it); people and monitors see why.
      if (degraded)
        return {
          status: 'degraded',
          ...body,
          code: degraded.code,
          detail: publicDetail(degraded),
        } satisfies Health;
      if (!failure) return { status: 'ok', ...body } satisfies Health;
      // Load balancers and monitors see a non-2xx answer; people see why and what to do.
      return reply
        .code(503)
        .type('application/json')
        .send({
          status: 'failing',
          ...body,
          code: failure.code,
          // The code and a generic detail (the log has the full message, which may name server files).
          // A failed write is cured by a restart; a store that lost acknowledged events is not: its own
          // remedy (restore a backup, or accept the loss) comes first.
          detail:
            failure.code === 'EDBX_ERR_STORE_IO'
              ? `${WRITES_REFUSED}: ${publicDetail(failure)}`
              : `${publicDetail(failure)}; ${WRITES_REFUSED}`,
        } satisfies Health);
    },
  );

  app.get(
    '/metrics',
    {
      schema: {
        summary: 'Prometheus metrics (any valid token)',
        produces: ['text/plain'],
        response: {
          200: { description: 'Prometheus text exposition format', type: 'string' },
          401: errors[401],
        },
      },
    },
    async (req, reply) => {
      ctx.auth(req.headers.authorization, { write: false });
      const text = await ctx.metrics.registry.metrics();
      return reply.type(ctx.metrics.registry.contentType).send(text);
    },
  );

  app.get(
    '/openapi.json',
    {
      schema: {
        summary: 'This API as OpenAPI 3.1',
        security: [],
        response: {
          200: { description: 'The OpenAPI document', type: 'object', additionalProperties: true },
        },
      },
    },
    async () => app.swagger(),
  );
}
