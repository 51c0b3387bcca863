/**
 * The HTTP/1.1 layer below fastify's routing: request timeouts and the answers to requests that never
 * reach a route (timed out, oversized headers, bytes that are not HTTP). Node reports these as the
 * server's `clientError` on the raw socket; they get problem+json like every other error.
 */
import { STATUS_CODES, maxHeaderSize } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyBaseLogger } from 'fastify';
import { type EventDbxError, err } from '../core/errors.js';
import { isClientGone, toProblem } from './problem.js';

/** Methods whose requests carry a body the server reads (fastify parses the bodies of these only). */
const WITH_BODY = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export const isBodyMethod = (method: string): boolean => WITH_BODY.has(method);

export interface Timeouts {
  /** The whole request (headers and body) must arrive within this (default 30 s). */
  readonly requestMs?: number;
  /** The headers must arrive within this (default: requestMs). */
  readonly headersMs?: number;
  /** An idle keep-alive connection is closed after this (default 5 s). */
  readonly keepAliveMs?: number;
  /**
   * A connection with no traffic is closed after this (default 60 s, always above the request timeout),
   * but never while a request's handler runs (in-flight.ts).
   */
  readonly idleMs?: number;
}

export interface HttpTimeouts {
  readonly requestTimeout: number;
  readonly keepAliveTimeout: number;
  readonly connectionTimeout: number;
  readonly http: { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number };
}

/**
 * Node checks the request and headers timeouts only every `connectionsCheckingInterval` (30 s by
 * default, so a 30 s timeout fired after up to 60 s): check ten times per timeout, at most every
 * second. The socket inactivity timeout stays above the request timeout, or it would close a stalled
 * request without an answer before the 408 could be sent.
 */
export function httpTimeouts(t: Timeouts = {}): HttpTimeouts {
  const request = t.requestMs ?? 30_000;
  const headers = Math.min(t.headersMs ?? request, request);
  const interval = Math.max(10, Math.min(1_000, Math.floor(headers / 10)));
  return {
    requestTimeout: request,
    keepAliveTimeout: t.keepAliveMs ?? 5_000,
    connectionTimeout: Math.max(t.idleMs ?? 60_000, request + 2 * interval),
    http: { headersTimeout: headers, requestTimeout: request, connectionsCheckingInterval: interval },
  };
}

/**
 * What the log says of a client error: not the error itself, since Node's parse errors carry the
 * request's raw bytes (`rawPacket`), its Authorization header and body included.
 */
const logged = (e: NodeJS.ErrnoException) => ({ code: e.code, reason: e.message });

/** What Node's parser adds to its errors: the bytes of the read it stopped in, and where it stopped. */
interface ParseError {
  readonly rawPacket?: unknown;
  readonly bytesParsed?: unknown;
}

/** A request line's start: a method, then the URL (no header name is followed by a space). */
const REQUEST_LINE = /^[A-Z]+ /;

/**
 * What put a request over the header limit, which Node reports only as "Header overflow" (QA scale
 * finding 2: a long id in the URL was answered "send fewer or shorter headers"). Node counts the URL
 * and the header lines together, and stops at the end of the part that crossed the limit, `bytesParsed`
 * into `rawPacket` (the last read, not the whole request). That part is the URL when the line it
 * stopped in starts with a method, or when the request line's ` HTTP/1.1` follows it (a header name
 * ends at its ':', a value at the line's end). When the last read holds neither, which part it was is
 * unknown and the answer names both.
 */
export function headerOverflow(e: ParseError, limit: number): EventDbxError {
  const raw = Buffer.isBuffer(e.rawPacket) ? e.rawPacket : undefined;
  const at = typeof e.bytesParsed === 'number' ? e.bytesParsed : -1;
  const unknown = err('EDBX_ERR_HEADERS_TOO_LARGE', { limit, unknown: true });
  if (!raw || at < 0 || at > raw.length) return unknown;
  const read = raw.subarray(0, at).toString('latin1');
  const lineStart = read.lastIndexOf('\n') + 1;
  const method = REQUEST_LINE.exec(read.slice(lineStart))?.[0];
  const ended = raw[at] === 0x20; // the URL's whole, not a part of it cut off by the end of the read
  if (method !== undefined) {
    const bytes = at - lineStart - method.length;
    return err('EDBX_ERR_URI_TOO_LONG', ended ? { limit, bytes } : { limit });
  }
  if (lineStart === 0) {
    const follows = raw.subarray(at, at + 7).toString('latin1');
    if (/^ HTTP\/\d/.test(follows) && raw[at - 1] !== 0x3a) return err('EDBX_ERR_URI_TOO_LONG', { limit });
    // A header name's end, or a value's: else the read ended inside the part, which may be either.
    return raw[at - 1] === 0x3a || raw[at] === 0x0d || raw[at] === 0x0a
      ? err('EDBX_ERR_HEADERS_TOO_LARGE', { limit })
      : unknown;
  }
  // A header line. The request's own line is the last one before it that looks like one, if read: a
  // URL long enough to matter is named.
  const url = read
    .slice(0, lineStart)
    .split('\n')
    .reverse()
    .map((line) => /^[A-Z]+ (\S*) HTTP\/\d\.\d\r?$/.exec(line)?.[1])
    .find((u) => u !== undefined);
  const long = url !== undefined && url.length * 4 >= limit;
  return err('EDBX_ERR_HEADERS_TOO_LARGE', long ? { limit, url: url.length } : { limit });
}

export function clientErrorHandler(timeouts: HttpTimeouts, log: () => FastifyBaseLogger) {
  return (e: NodeJS.ErrnoException, socket: Socket): void => {
    if (isClientGone(e) || socket.destroyed) {
      log().debug(logged(e), 'client went away');
      socket.destroy();
      return;
    }
    let error;
    if (e.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      // A request whose headers arrived is timed out by requestTimeout, else by headersTimeout.
      const started = Boolean((socket as { _httpMessage?: unknown })._httpMessage);
      const ms = started ? timeouts.http.requestTimeout : timeouts.http.headersTimeout;
      error = err('EDBX_ERR_REQUEST_TIMEOUT', { ms });
    } else if (e.code === 'HPE_HEADER_OVERFLOW') {
      error = headerOverflow(e as ParseError, maxHeaderSize);
    } else {
      error = err('EDBX_ERR_MALFORMED_REQUEST', { reason: e.code ?? e.message });
    }
    log().debug(logged(e), 'client error');
    // As Node does: answer only if no response of this connection has started.
    const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
    if (socket.writable && !inFlight?.headersSent) {
      const body = JSON.stringify(toProblem(error));
      socket.write(
        `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status]}\r\n` +
          'Content-Type: application/problem+json; charset=utf-8\r\n' +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    }
    socket.destroy();
  };
}
