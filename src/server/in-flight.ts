/**
 * Long reads while their handler runs (listings, events, state at a version, verification, the audit
 * log): each takes an AbortSignal, aborted with EDBX_ERR_CANCELLED when the client's connection closes
 * before the answer is sent, and with EDBX_ERR_SHUTTING_DOWN when a stopping server gives up waiting
 * for it, so no work goes on for an answer no one will read. While such a handler runs the socket's
 * inactivity timeout is off: the timeouts protect against slow and idle clients (headers and body
 * within the request timeout, idle keep-alive), never against a server still working on the answer.
 *
 * A client that gave up (a timeout, then a retry) has usually closed its connection before its
 * request is served, often before the server accepted it: `longRead` does not start such a read, the
 * store's reads stop within a few records of the close (store/pace.ts), and an answer built anyway is
 * not serialised.
 *
 * All of it is set up when a handler starts a long read (`longRead`), not for every request: the
 * short requests (a cached state, an append) pay nothing for it but one lookup before serialising.
 */
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { isEventDbxError, throwIfAborted } from '../core/errors.js';
import { nextTurn } from '../store/pace.js';
import { Cancellations } from './cancellations.js';

interface Tracking {
  readonly reads: Cancellations;
  readonly connectionTimeout: number;
}

/** The decoration of the server instance (inherited by every route's instance) that holds the tracking. */
const KEY = 'eventdbxInFlight';

/*
 * Not fastify's own `request.signal`: that one follows the request stream's 'close', which Node emits
 * once the body is read, and carries no coded reason.
 */
const signals = new WeakMap<FastifyReply, AbortSignal>();
const never = new AbortController().signal;

/** Set the connection's inactivity timeout (an injected request has no real socket). */
const idle = (reply: FastifyReply, ms: number): void => {
  const socket = reply.request.raw.socket as Partial<Pick<Socket, 'setTimeout'>> | undefined;
  if (typeof socket?.setTimeout === 'function') socket.setTimeout(ms);
};

/** The request's socket, when it has a real one (an injected request has not). */
const socketOf = (reply: FastifyReply): Socket | undefined => {
  const socket = reply.request.raw.socket as Partial<Socket> | null | undefined;
  return typeof socket?.once === 'function' ? (socket as Socket) : undefined;
};

/**
 * The signal of the request being answered with `reply`: aborted when its client went away before the
 * answer, or the server stops. Its socket stays open until the answer is handed over.
 */
function signalOf(reply: FastifyReply): AbortSignal {
  const known = signals.get(reply);
  if (known) return known;
  const t = (reply.server as unknown as Record<string, Tracking | undefined>)[KEY];
  if (!t) return never;
  const read = t.reads.open();
  signals.set(reply, read.signal);
  const socket = socketOf(reply);
  // The client's FIN: Node's HTTP server (no httpAllowHalfOpen) then ends the connection, so no answer
  // can be written any more. Seen here a turn or two before the reply's 'close'.
  const gone = () => read.cancel();
  socket?.once('end', gone);
  // 'close' comes after the answer is written, or when the connection ended before it was.
  reply.raw.once('close', () => {
    socket?.off('end', gone);
    read.end();
    if (!reply.raw.writableEnded) read.cancel();
  });
  // Closed before the handler asked (its events are past): no one will read the answer.
  if (reply.raw.destroyed || socket?.readableEnded || socket?.destroyed) read.cancel();
  // The request has arrived whole (the request timeout no longer applies to it): the socket's
  // inactivity timeout would cut the answer of a handler that takes longer, with nothing sent or logged.
  idle(reply, 0);
  // The answer is handed to the socket: a client that does not read it is an idle client again.
  reply.raw.once('prefinish', () => idle(reply, t.connectionTimeout));
  return read.signal;
}

/**
 * Start a long read: its signal, once the server has looked at the request's socket again. A client
 * that closed its connection right after sending the request (a timeout; often before the server
 * even accepted it) has its FIN read only on a later turn of the event loop than its request: two
 * turns let one poll of the sockets run in between. The read is not started then (EDBX_ERR_CANCELLED,
 * logged as any read stopped so). Costs a client still there two turns, microseconds.
 *
 * @example
 * const events = await store.events(type, id, { take, signal: await longRead(reply) });
 */
export async function longRead(reply: FastifyReply): Promise<AbortSignal> {
  const signal = signalOf(reply);
  if (signal === never) return signal;
  await nextTurn();
  await nextTurn();
  throwIfAborted(signal);
  return signal;
}

/** Let the routes of `app` take signals; `stop` aborts those still running (with its reason). */
export function trackInFlight(app: FastifyInstance, connectionTimeout: number, stop: AbortSignal): void {
  const tracking: Tracking = { reads: new Cancellations(stop), connectionTimeout };
  app.decorate(KEY, tracking);
  // An answer built for a client that has gone is not serialised (a page of 1000 events is
  // milliseconds of JSON): the request ends as a read stopped at its last chunk. Only for long reads
  // (a signal), and not for the problem that says so (its status is over 400).
  app.addHook('preSerialization', (_req, reply, payload, done) => {
    const signal = signals.get(reply);
    if (signal?.aborted && reply.statusCode < 400 && isEventDbxError(signal.reason, 'EDBX_ERR_CANCELLED'))
      return done(signal.reason as Error);
    done(null, payload);
  });
}
