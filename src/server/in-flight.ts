/**
 * Long reads while their handler runs (listings, events, state at a version, verification, the audit
 * log): each takes an AbortSignal, aborted with EDBX_ERR_CANCELLED when the client's connection closes
 * before the answer is sent, and with EDBX_ERR_SHUTTING_DOWN when a stopping server gives up waiting
 * for it, so no work goes on for an answer no one will read. While such a handler runs the socket's
 * inactivity timeout is off: the timeouts protect against slow and idle clients (headers and body
 * within the request timeout, idle keep-alive), never against a server still working on the answer.
 *
 * All of it is set up when a handler asks for its signal, not for every request: the short requests
 * (a cached state, an append) pay nothing for it.
 */
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply } from 'fastify';
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

/**
 * The signal of the request being answered with `reply`: aborted when its client went away before the
 * answer, or the server stops. Its socket stays open until the answer is handed over.
 */
export function signalOf(reply: FastifyReply): AbortSignal {
  const known = signals.get(reply);
  if (known) return known;
  const t = (reply.server as unknown as Record<string, Tracking | undefined>)[KEY];
  if (!t) return never;
  const read = t.reads.open();
  signals.set(reply, read.signal);
  // 'close' comes after the answer is written, or when the connection ended before it was.
  reply.raw.once('close', () => {
    read.end();
    if (!reply.raw.writableEnded) read.cancel();
  });
  // The request has arrived whole (the request timeout no longer applies to it): the socket's
  // inactivity timeout would cut the answer of a handler that takes longer, with nothing sent or logged.
  idle(reply, 0);
  // The answer is handed to the socket: a client that does not read it is an idle client again.
  reply.raw.once('prefinish', () => idle(reply, t.connectionTimeout));
  return read.signal;
}

/** Let the routes of `app` take signals; `stop` aborts those still running (with its reason). */
export function trackInFlight(app: FastifyInstance, connectionTimeout: number, stop: AbortSignal): void {
  const tracking: Tracking = { reads: new Cancellations(stop), connectionTimeout };
  app.decorate(KEY, tracking);
}
