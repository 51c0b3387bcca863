/**
 * The audit log over HTTP for group `admin` (the same reads as `eventdbx audit list` and `audit verify`):
 * full EventRecords, so an auditor can recompute each leaf and prove it against a signed checkpoint
 * with GET /v1/ledger/proof?position=.
 */
import type { FastifyInstance } from 'fastify';
import { auditEntries, auditSince } from '../../store/audit-log.js';
import { verifyAuditLog } from '../../store/audit-state.js';
import type { Feature } from '../features.js';
import { signalOf } from '../in-flight.js';
import { DEFAULT_PAGE, MAX_PAGE, type Query, decodeCursor, pageOf, isVersionCursor, num } from '../paging.js';
import { errors, eventRecord, integrityError, nextCursor, page, verifyReport } from '../schemas.js';

const str = { type: 'string' } as const;
/** What an admin read can answer: no 404 (the log is empty before the first action, never missing). */
const adminReadErrors = { 400: errors[400], 401: errors[401], 403: errors[403] } as const;

export const auditFeature: Feature = {
  name: 'audit',
  async routes(app: FastifyInstance, ctx) {
    const admin = (header: string | undefined) => ctx.auth(header, { write: false, admin: true });
    app.get<{ Querystring: Query }>(
      '/v1/audit',
      {
        schema: {
          summary: 'Audit log entries, oldest first (admin), like `eventdbx audit list`',
          description:
            'Full EventRecords of `$audit/log`: recompute a leaf from an entry and prove it against a signed ' +
            'checkpoint with GET /v1/ledger/proof?position=. Give the same `since` with each `cursor`.',
          querystring: {
            ...page,
            properties: {
              ...page.properties,
              since: {
                ...str,
                description: 'only entries written at or after this ISO date, e.g. 2026-11-01',
              },
            },
          },
          response: {
            200: {
              type: 'object',
              properties: {
                entries: { type: 'array', items: eventRecord },
                next_cursor: nextCursor,
              },
            },
            ...adminReadErrors,
            ...integrityError,
          },
        },
      },
      async (req, reply) => {
        admin(req.headers.authorization);
        const take = num(req.query, 'take', DEFAULT_PAGE, 1, MAX_PAGE);
        const entries = await auditEntries(ctx.store, {
          since: auditSince(req.query.since, 'since'),
          after: decodeCursor(req.query.cursor, isVersionCursor)?.v,
          skip: num(req.query, 'skip', 0),
          take: take + 1,
          signal: signalOf(reply),
        });
        const { shown, next_cursor } = pageOf(entries, take, (e) => ({ v: e.version }));
        return { entries: shown, next_cursor };
      },
    );
    app.get(
      '/v1/audit/verify',
      {
        schema: {
          summary: 'Recompute the audit log tree and check the records it vouches for (admin)',
          description:
            'The report of `eventdbx audit verify --json`: 200 whether or not it verifies; `ok` says which. ' +
            '`state` (schemas, tokens, archive states and snapshot thresholds against the log) is present ' +
            'only when the log itself verifies.',
          response: {
            200: {
              type: 'object',
              properties: {
                ok: { type: 'boolean' },
                report: verifyReport,
                state: {
                  type: 'object',
                  properties: { ok: { type: 'boolean' }, problems: { type: 'array', items: str } },
                },
              },
            },
            401: errors[401],
            403: errors[403],
          },
        },
      },
      async (req, reply) => {
        admin(req.headers.authorization);
        return verifyAuditLog(ctx.store, signalOf(reply));
      },
    );
  },
};
