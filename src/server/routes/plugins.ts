/**
 * The plugin feature of the server: runs the delivery host while the server runs (so configuration
 * changes made through the CLI's control socket take effect at once), and admin-only endpoints for
 * tooling: list (secrets masked), status, dead letters, replay and retry.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { err } from '../../core/errors.js';
import { replayPlugin, retryPlugin } from '../../plugins/admin.js';
import { deadLetters, listPlugins, pluginStatus } from '../../plugins/views.js';
import type { DeliveryHost } from '../../plugins/host.js';
import { wholeNumber } from '../../core/names.js';
import { ADMIN_WRITE, issuerOf } from '../../core/tokens.js';
import type { WriteContext } from '../../store/types.js';
import type { RouteContext } from '../app.js';
import type { Feature } from '../features.js';
import { MAX_WHOLE, errors, readErrors, uint } from '../schemas.js';
import { MAX_PAGE } from '../paging.js';

const str = { type: 'string' } as const;
const nameParams = { type: 'object', properties: { name: str }, required: ['name'] } as const;

type Auth = { headers: { authorization?: string } };

async function pluginRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const { store } = ctx;
  const read = (req: Auth) => ctx.auth(req.headers.authorization, { write: false, admin: true });
  const config = { access: ADMIN_WRITE };
  const change = (req: FastifyRequest): WriteContext => {
    const t = ctx.authorized(req);
    if (ctx.draining()) throw err('EDBX_ERR_SHUTTING_DOWN');
    return { issuedBy: issuerOf(t) };
  };

  app.get(
    '/v1/plugins',
    {
      schema: {
        summary: 'Plugins (secrets masked) and field mappings (admin)',
        response: { 200: { description: 'OK' }, ...readErrors },
      },
    },
    async (req) => {
      read(req);
      return listPlugins(store);
    },
  );

  app.get(
    '/v1/plugins/status',
    {
      schema: {
        summary: 'Delivery state of each plugin: cursor, lag, retries, last error, dead letters (admin)',
        response: { 200: { description: 'OK' }, ...readErrors },
      },
    },
    async (req) => {
      read(req);
      return pluginStatus(store);
    },
  );

  app.get<{ Params: { name: string }; Querystring: { take?: string; from?: string } }>(
    '/v1/plugins/:name/dead-letters',
    {
      schema: {
        summary: 'Events a plugin gave up on, with the reason (admin), a page at a time',
        description: `Oldest first, at most \`take\` (default and most ${MAX_PAGE}) from position \`from\` on; \`next_from\` is the \`from\` of the next page, null after the last.`,
        params: nameParams,
        querystring: {
          type: 'object',
          properties: {
            take: uint(`at most this many dead letters (default ${MAX_PAGE})`, {
              minimum: 1,
              maximum: MAX_PAGE,
            }),
            from: uint('the dead letters of this position and later (next_from of the page before)', {
              minimum: 1,
              maximum: MAX_WHOLE,
            }),
          },
          additionalProperties: false,
        },
        response: { 200: { description: 'OK' }, ...readErrors },
      },
    },
    async (req) => {
      read(req);
      const whole = (name: 'take' | 'from', max: number): number | undefined => {
        const raw = req.query[name];
        if (raw === undefined) return undefined;
        const n = wholeNumber(raw);
        if (n === undefined || n < 1 || n > max)
          throw err('EDBX_ERR_INVALID_ARGUMENT', {
            name,
            value: raw,
            reason: `use a whole number from 1 to ${max}`,
          });
        return n;
      };
      const take = whole('take', MAX_PAGE) ?? MAX_PAGE;
      return deadLetters(store, req.params.name, take, whole('from', MAX_WHOLE));
    },
  );

  app.post<{ Params: { name: string }; Body: { from?: number; rebuild?: boolean } | undefined }>(
    '/v1/plugins/:name/replay',
    {
      schema: {
        summary: 'Deliver again from a position (default 1) to rebuild a destination (admin)',
        params: nameParams,
        // Optional: no body replays from position 1.
        body: {
          type: ['object', 'null'],
          properties: {
            from: { type: 'integer', minimum: 1 },
            rebuild: {
              type: 'boolean',
              description:
                'clear the destination first (tables dropped, files moved aside), then deliver everything from 1',
            },
          },
          additionalProperties: false,
        },
        response: { 200: { description: 'OK' }, ...errors },
      },
      config,
    },
    async (req) =>
      replayPlugin(store, req.params.name, req.body?.from, change(req), 'body.from', req.body?.rebuild),
  );

  app.post<{ Params: { name: string } }>(
    '/v1/plugins/:name/retry',
    {
      schema: {
        summary: 'Deliver the dead letters again now (admin)',
        params: nameParams,
        response: { 200: { description: 'OK' }, ...errors },
      },
      config,
    },
    async (req) => retryPlugin(store, req.params.name, change(req)),
  );
}

let host: DeliveryHost | undefined;

export const pluginFeature: Feature = {
  name: 'plugin',
  routes: (app, ctx) => pluginRoutes(app, ctx),
  async start(secure, log) {
    const { DeliveryHost } = await import('../../plugins/host.js');
    host = new DeliveryHost(secure.store, { log });
    await host.start();
  },
  async stop() {
    await host?.stop();
    host = undefined;
  },
};
