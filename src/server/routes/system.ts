/** Health, metrics and the OpenAPI document. */
import type { FastifyInstance } from 'fastify';
import type { RouteContext } from '../app.js';
import { errors } from '../schemas.js';

export async function systemRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  app.get(
    '/health',
    {
      schema: {
        summary: 'Liveness probe (no token needed)',
        security: [],
        response: {
          200: {
            type: 'object',
            properties: {
              status: { type: 'string' },
              version: { type: 'string' },
              restrict: { type: 'string' },
              uptime_seconds: { type: 'number' },
              events: { type: 'integer' },
            },
          },
        },
      },
    },
    async () => ({
      status: 'ok',
      version: ctx.options.version,
      restrict: ctx.options.restrict,
      uptime_seconds: Math.round((Date.now() - ctx.startedAt.getTime()) / 1000),
      events: ctx.store.size,
    }),
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
