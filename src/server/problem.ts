/**
 * The HTTP error edge: every error becomes `application/problem+json` (RFC 9457) with the registry's
 * stable code and status. Unknown errors are 500 with a generic message (details go to the log only).
 * Server errors and refused authentications are logged (see logAnswer).
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { type EventDbxError, err, isEventDbxError, problemMembers, publicDetail } from '../core/errors.js';
import type { Problem } from '../protocol/problem.js';
import type { RepeatLog } from '../core/repeat-log.js';
import { isTokenShaped, redactTokens, tokenIdOf } from '../core/tokens.js';
import { fromValidation } from './validation.js';

/**
 * Seconds a client should wait before retrying a request refused for a while: while the server stops,
 * or while it holds as many request bodies as it buffers at once (body-budget.ts).
 */
const RETRY_AFTER_S: Readonly<Record<string, number>> = {
  EDBX_ERR_SHUTTING_DOWN: 2,
  EDBX_ERR_BODY_BUFFER_FULL: 1,
};

export type { Problem };

/**
 * The problem details of an error. `detail` may quote a value sent and `instance` is the URL sent:
 * a token among them (sent by mistake as `?token=edbx_…`) is shown as its id only.
 */
export function toProblem(e: EventDbxError, instance?: string): Problem {
  return {
    type: `https://eventdbx.dev/errors/${e.code}`,
    title: e.code,
    status: e.status,
    code: e.code,
    // Never the server's file paths (a storage error's): the log has the full message.
    detail: redactTokens(publicDetail(e)),
    ...(instance ? { instance: redactTokens(instance) } : {}),
    ...(e.event ? { event: e.event } : {}),
    ...problemMembers(e),
  };
}

/** Map fastify's own errors (validation, body limits, parsing) to registry errors. */
function fromFastify(e: FastifyError, bodyLimit: number | undefined): EventDbxError {
  if (e.validation && e.validation.length > 0) return fromValidation(e.validation[0]!, e.validationContext);
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return err('EDBX_ERR_BODY_TOO_LARGE', { limit: bodyLimit });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return err('EDBX_ERR_UNSUPPORTED_MEDIA_TYPE');
    case 'FST_ERR_BAD_URL':
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return err('EDBX_ERR_INVALID_ARGUMENT', {
        name: 'URL',
        value: '',
        reason: 'a path segment is not valid percent-encoding or is too long',
      });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return err('EDBX_ERR_INVALID_JSON', { reason: e.message });
  }
  if (e.statusCode === 400 && /JSON/i.test(e.message))
    return err('EDBX_ERR_INVALID_JSON', { reason: e.message });
  if (e.statusCode === 413) return err('EDBX_ERR_BODY_TOO_LARGE', { limit: bodyLimit });
  if (e.statusCode === 415) return err('EDBX_ERR_UNSUPPORTED_MEDIA_TYPE');
  if (e.statusCode === 408) return err('EDBX_ERR_REQUEST_TIMEOUT');
  return err('EDBX_ERR_INTERNAL', { reason: 'unexpected server error' }, e);
}

/**
 * Errors of a client that went away mid-request (reset, closed before the body ended, aborted): there
 * is no one to answer and nothing wrong with the server, so they are not logged as errors.
 */
const GONE = new Set([
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
  'ERR_STREAM_PREMATURE_CLOSE',
  'HPE_INVALID_EOF_STATE',
]);
export const isClientGone = (e: unknown): boolean =>
  GONE.has((e as { code?: string } | undefined)?.code ?? '') ||
  (e as Error | undefined)?.message === 'aborted';

/**
 * The challenge a 401 carries (RFC 6750 §3): a request without a token gets the bare scheme, one whose
 * token is malformed, unknown, expired or revoked gets `error="invalid_token"`.
 */
export function wwwAuthenticate(code: string): string {
  const realm = 'Bearer realm="eventdbx"';
  return code === 'EDBX_ERR_TOKEN_MISSING' ? realm : `${realm}, error="invalid_token"`;
}

/** The route of an unknown path, in the log and in /metrics alike. */
export const UNMATCHED_ROUTE = 'unmatched';

/** A request's route: its pattern (`/v1/aggregates/:aggregate_type`, never the ids sent) or `unmatched`. */
export function routeOf(req: FastifyRequest): string {
  return req.routeOptions?.url ?? UNMATCHED_ROUTE;
}

/** The id (short prefix) of the token an `Authorization` header presents, when it has one: never more. */
export function headerTokenId(header: string | undefined): string | undefined {
  const m = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m && isTokenShaped(m[1]!) ? tokenIdOf(m[1]!) : undefined;
}

/** The id of the token a refused request presented, when it had one: never more. */
function presentedTokenId(e: EventDbxError, header: string | undefined): string | undefined {
  return typeof e.params.id === 'string' ? e.params.id : headerTokenId(header);
}

/**
 * What the log says of an answer: every server error (5xx) at error level (a body over the budget
 * of request bodies, turned away by design, at warn), every refused authentication (401) at warn
 * level with the token's id, never a token, key or payload. Repeats of
 * one failure (a full disk refusing every write, a client retrying a revoked token) are collapsed by
 * `lines`: the first is logged, then one a minute with the number left out (`repeated`); what is left
 * out is logged once its minute has passed or when the server stops, never lost.
 */
function logAnswer(lines: RepeatLog, error: EventDbxError, cause: unknown, req: FastifyRequest): void {
  // A stop refusing requests is expected, and says so itself.
  if (error.code === 'EDBX_ERR_SHUTTING_DOWN') return;
  const where = { reqId: req.id, method: req.method, route: routeOf(req) };
  // Not a server error, but work left unfinished: say which request it was.
  if (error.code === 'EDBX_ERR_CANCELLED') {
    req.log.info({ code: error.code, ...where }, 'request stopped: the client went away before the answer');
    return;
  }
  if (error.status >= 500) {
    const internal = error.code === 'EDBX_ERR_INTERNAL' ? { err: cause } : {};
    lines.note(`${error.code}:${error.message}`, {
      // A load the server turns away by design (bodies over its budget) is no server failure.
      level: error.code === 'EDBX_ERR_BODY_BUFFER_FULL' ? 'warn' : 'error',
      fields: { code: error.code, status: error.status, ...where, ...internal },
      msg: error.message,
    });
  } else if (error.status === 401) {
    const tokenId = presentedTokenId(error, req.headers.authorization);
    lines.note(`${error.code}:${tokenId}:${req.ip}`, {
      level: 'warn',
      fields: { code: error.code, ...(tokenId ? { token_id: tokenId } : {}), ip: req.ip, ...where },
      msg: 'authentication refused',
    });
  }
}

/**
 * The error handler of one server. `closing`: the server is stopping, so a request still running when
 * the store closed gets the stop's 503. `lines`: the server's log, collapsing repeated lines (the
 * server closes it when it stops, logging the counts left out).
 */
export function errorHandler(
  closing: () => boolean,
  lines: RepeatLog,
): (e: FastifyError | Error, req: FastifyRequest, reply: FastifyReply) => void {
  return (e, req, reply) => {
    const bodyLimit = req.routeOptions?.bodyLimit ?? req.server?.initialConfig.bodyLimit;
    let error: EventDbxError;
    if (isEventDbxError(e, 'EDBX_ERR_STORE_NOT_OPEN') && closing()) error = err('EDBX_ERR_SHUTTING_DOWN');
    else if (isEventDbxError(e)) error = e;
    else if (isClientGone(e)) {
      // The answer goes nowhere, but sending it ends the request (close() waits for in-flight ones).
      req.log.debug({ err: e }, 'client went away');
      error = err('EDBX_ERR_MALFORMED_REQUEST', { reason: 'the client closed the connection mid-request' });
    } else error = fromFastify(e as FastifyError, bodyLimit);
    logAnswer(lines, error, e, req);
    if (error.status === 401) void reply.header('WWW-Authenticate', wwwAuthenticate(error.code));
    // Refused for a while: the client should try again shortly. A stopping server also closes the
    // connection (the restarted server, another node, is on a new one).
    const retryAfter = RETRY_AFTER_S[error.code];
    if (retryAfter !== undefined) void reply.header('Retry-After', String(retryAfter));
    if (error.code === 'EDBX_ERR_SHUTTING_DOWN') void reply.header('Connection', 'close');
    void reply.code(error.status).type('application/problem+json').send(toProblem(error, req.url));
  };
}

/**
 * No route for the method and path: 405 with `Allow` when the path exists for other methods (`allowed`
 * lists them), else 404.
 */
export function notFoundHandler(allowed: (path: string) => string[]) {
  return (req: FastifyRequest, reply: FastifyReply): void => {
    const url = req.url.split('?')[0]!;
    const methods = allowed(url);
    if (methods.length > 0) {
      const e = err('EDBX_ERR_METHOD_NOT_ALLOWED', { method: req.method, url, allowed: methods.join(', ') });
      void reply
        .code(405)
        .header('allow', methods.join(', '))
        .type('application/problem+json')
        .send(toProblem(e, req.url));
      return;
    }
    const e = err('EDBX_ERR_ROUTE_NOT_FOUND', { method: req.method, url });
    void reply.code(404).type('application/problem+json').send(toProblem(e, req.url));
  };
}
