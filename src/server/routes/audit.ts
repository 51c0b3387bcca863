/**
 * The audit log over HTTP (the same reads as `eventdbx audit list` and `audit verify`) for a token
 * issued with `--audit`, or an unrestricted group `admin` token: full EventRecords, so an auditor can
 * recompute each leaf and prove it against a signed checkpoint with GET /v1/ledger/proof?position=.
 * A token limited to some aggregates sees the entries about them and about the store as a whole; the
 * others are withheld, listed by version, position and hash only (see core/audit-scope.ts).
 */
import type { FastifyInstance } from 'fastify';
import { auditEntryVisible } from '../../core/audit-scope.js';
import type { EventRecord } from '../../core/event.js';
import { MAX_WHOLE } from '../../core/names.js';
import { auditEntries, auditFromPosition, auditSince } from '../../store/audit-log.js';
import { verifyAuditLog } from '../../store/audit-state.js';
import { scopesById } from '../../store/tokens.js';
import type { Feature } from '../features.js';
import { longRead } from '../in-flight.js';
import { DEFAULT_PAGE, MAX_PAGE, type Query, decodeCursor, pageOf, isVersionCursor, num } from '../paging.js';
import { errors, eventRecord, integrityError, nextCursor, page, uint, verifyReport } from '../schemas.js';

const str = { type: 'string' } as const;
/** What an admin read can answer: no 404 (the log is empty before the first action, never missing). */
const adminReadErrors = { 400: errors[400], 401: errors[401], 403: errors[403] } as const;
/** An entry left out for a token limited to some aggregates: enough to recompute the log's tree. */
const withheldEntry = {
  type: 'object',
  properties: {
    version: { type: 'integer' },
    position: { type: 'integer' },
    hash: str,
  },
} as const;

type ScopesOf = ReturnType<typeof scopesById>;

/**
 * A page's entries split into those the token sees and those withheld from it; `ofTokens` is called
 * only for a scoped token (it maps every token's scopes).
 */
function visibleTo(scopes: readonly string[], entries: readonly EventRecord[], ofTokens: () => ScopesOf) {
  if (scopes.length === 0) return { entries, withheld: [] };
  const scopesOf = ofTokens();
  const shown: EventRecord[] = [];
  const withheld: Array<{ version: number; position: number; hash: string }> = [];
  for (const e of entries) {
    if (auditEntryVisible(scopes, e, scopesOf)) shown.push(e);
    else withheld.push({ version: e.version, position: e.position, hash: e.hash });
  }
  return { entries: shown, withheld };
}

export const auditFeature: Feature = {
  name: 'audit',
  async routes(app: FastifyInstance, ctx) {
    const reader = (header: string | undefined) => ctx.auth(header, { write: false, auditLog: true });
    app.get<{ Querystring: Query }>(
      '/v1/audit',
      {
        schema: {
          summary: 'Audit log entries, oldest first (--audit or admin), like `eventdbx audit list`',
          description:
            'Full EventRecords of `$audit/log`: recompute a leaf from an entry and prove it against a signed ' +
            'checkpoint with GET /v1/ledger/proof?position=. Give the same `since` and `from_position` with ' +
            'each `cursor`. ' +
            'A token issued with --audit and --aggregate scopes sees the entries about its aggregates, the ' +
            'tokens that can reach them and the store as a whole; each other entry is in `withheld` (version, ' +
            'position and leaf hash only), and `skip` and `take` count both.',
          querystring: {
            ...page,
            properties: {
              ...page.properties,
              since: {
                ...str,
                description: 'only entries written at or after this ISO date, e.g. 2026-11-01',
              },
              from_position: uint(
                'only entries at or after this ledger position, by commit order: after a backup, its ' +
                  '`events` + 1 lists what the backup does not hold',
                { minimum: 1, maximum: MAX_WHOLE },
              ),
            },
          },
          response: {
            200: {
              type: 'object',
              properties: {
                entries: { type: 'array', items: eventRecord },
                withheld: { type: 'array', items: withheldEntry },
                next_cursor: nextCursor,
              },
            },
            ...adminReadErrors,
            ...integrityError,
          },
        },
      },
      async (req, reply) => {
        const t = reader(req.headers.authorization);
        const take = num(req.query, 'take', DEFAULT_PAGE, 1, MAX_PAGE);
        const since = auditSince(req.query.since, 'since');
        const fromPosition = auditFromPosition(req.query.from_position, 'from_position');
        const after = decodeCursor(req.query.cursor, isVersionCursor)?.v;
        const skip = num(req.query, 'skip', 0);
        const entries = await auditEntries(ctx.store, {
          since,
          fromPosition,
          after,
          skip,
          take: take + 1,
          signal: await longRead(reply),
        });
        const { shown, next_cursor } = pageOf(entries, take, (e) => ({ v: e.version }));
        return { ...visibleTo(t.scopes, shown, () => scopesById(ctx.store)), next_cursor };
      },
    );
    app.get(
      '/v1/audit/verify',
      {
        schema: {
          summary: 'Recompute the audit log tree and check the records it vouches for (--audit or admin)',
          description:
            'The report of `eventdbx audit verify --json`: 200 whether or not it verifies; `ok` says which. ' +
            '`state` (schemas, tokens, archive states and snapshot thresholds against the log) is present ' +
            'only when the log itself verifies. It is about the whole store, for a scoped token too: its ' +
            'problems may name other aggregate types, aggregates, token ids and plugins.',
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
        reader(req.headers.authorization);
        return verifyAuditLog(ctx.store, await longRead(reply));
      },
    );
  },
};
