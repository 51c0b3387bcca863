/**
 * HTTP preconditions (RFC 9110 §13) on writes. An append takes `If-Match: "<version>"` and
 * `If-None-Match: *` as its expected version; every other write refuses both, rather than ignoring a
 * guard its client relies on and writing unconditionally (qa-retry #2).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { RouteOptions, onRequestHookHandler } from 'fastify';
import { err } from '../core/errors.js';
import { wholeNumber } from '../core/names.js';
import { isBodyMethod } from './protocol.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * A write route that refuses `If-Match` and `If-None-Match` (all but the append): what to do
     * instead, ending the refusal's message (default: send the request without it).
     */
    readonly withoutPreconditions?: string;
  }
}

/** The precondition headers, as Node names them and as a message does. */
const PRECONDITIONS = [
  ['if-match', 'If-Match'],
  ['if-none-match', 'If-None-Match'],
] as const;

const headerValue = (header: string | string[] | undefined): string | undefined =>
  header === undefined ? undefined : (Array.isArray(header) ? header.join(', ') : header).trim();

/** `If-Match: "3"` as the expected version 3. */
function expectedFromIfMatch(header: string | string[] | undefined): number | undefined {
  const tag = headerValue(header);
  if (tag === undefined) return undefined;
  // RFC 9110 §13.1.1: If-Match compares strong tags, so a weak one can never match.
  if (tag.startsWith('W/'))
    throw err('EDBX_ERR_INVALID_ARGUMENT', {
      name: 'If-Match',
      value: tag,
      reason: 'is a weak tag, which If-Match never matches: send the ETag as served, e.g. "3"',
    });
  const raw = tag.replace(/^"(.*)"$/, '$1');
  const n = wholeNumber(raw);
  if (n === undefined) throw err('EDBX_ERR_INVALID_EXPECTED_VERSION', { value: raw });
  return n;
}

/** `If-None-Match: *` ("only if it does not exist yet") as the expected version 0; nothing else. */
function expectedFromIfNoneMatch(header: string | string[] | undefined): 0 | undefined {
  const tag = headerValue(header);
  if (tag === undefined) return undefined;
  if (tag === '*') return 0;
  throw err('EDBX_ERR_INVALID_ARGUMENT', {
    name: 'If-None-Match',
    value: tag,
    reason:
      'takes only * on an append (only if the aggregate does not exist yet): to append at a version, send If-Match: "<version>"',
  });
}

/**
 * The expected version of an append: `expected_version` in the body, `If-Match` or `If-None-Match: *`
 * (any of them; when several are sent they must agree).
 */
export function expectedVersionOf(
  headers: IncomingHttpHeaders,
  inBody: number | undefined,
): number | undefined {
  const ifMatch = expectedFromIfMatch(headers['if-match']);
  const ifNoneMatch = expectedFromIfNoneMatch(headers['if-none-match']);
  if (ifMatch !== undefined && inBody !== undefined && ifMatch !== inBody)
    throw err('EDBX_ERR_INVALID_ARGUMENT', {
      name: 'If-Match',
      value: ifMatch,
      reason: 'disagrees with expected_version in the body',
    });
  const other = inBody ?? ifMatch;
  if (ifNoneMatch !== undefined && other !== undefined && other !== ifNoneMatch)
    throw err('EDBX_ERR_INVALID_ARGUMENT', {
      name: 'If-None-Match',
      value: '*',
      reason: `(only if the aggregate does not exist yet) disagrees with ${inBody === undefined ? `If-Match "${ifMatch}"` : 'expected_version in the body'}`,
    });
  return other ?? ifNoneMatch;
}

/**
 * The hook refusing `If-Match` and `If-None-Match` on a write route that does not take them (its
 * schema declares no such header), or undefined for a route that takes them or reads.
 */
export function preconditionRefusal(route: RouteOptions): onRequestHookHandler | undefined {
  if (![route.method].flat().some(isBodyMethod)) return undefined;
  const declared = (route.schema as { headers?: { properties?: object } } | undefined)?.headers?.properties;
  const refused = PRECONDITIONS.filter(([header]) => !(declared && header in declared));
  if (refused.length === 0) return undefined;
  const instead = route.config?.withoutPreconditions ?? 'send the request without it';
  // As the README and /openapi.json name it: `/v1/schemas/{aggregate}`.
  const where = `${[route.method].flat().join(', ')} ${route.url.replace(/:(\w+)/g, '{$1}')}`;
  return (req, _reply, done) => {
    for (const [header, name] of refused) {
      const value = headerValue(req.headers[header]);
      if (value !== undefined) {
        done(
          err('EDBX_ERR_INVALID_ARGUMENT', {
            name,
            value,
            reason: `does not apply to ${where}, which has no version to match: ${instead}`,
          }),
        );
        return;
      }
    }
    done();
  };
}
