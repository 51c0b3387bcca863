/**
 * Requests while their handler runs: each gets an AbortSignal that its long reads take (listings,
 * events, state at a version, verification, the audit log). It is aborted with EDBX_ERR_CANCELLED when
 * the client's connection closes before the answer is sent, and with EDBX_ERR_SHUTTING_DOWN when a
 * stopping server gives up waiting for it, so no work goes on for an answer no one will read.
 * While a handler runs the socket's inactivity timeout is off: the timeouts protect against slow and
 * idle clients (headers and body within the request timeout, idle keep-alive), never against a
 * server still working on the answer.
 */
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { err } from '../core/errors.js';

/*
 * Not fastify's own `request.signal`: that one follows the request stream's 'close', which Node emits
 * once the body is read, and carries no coded reason.
 */
const signals = new WeakMap<FastifyRequest, AbortSignal>();
const never = new AbortController().signal;

/** Set the connection's inactivity timeout (an injected request has no real socket). */
const idle = (req: FastifyRequest, ms: number): void => {
  const socket = req.raw.socket as Partial<Pick<Socket, 'setTimeout'>> | undefined;
  if (typeof socket?.setTimeout === 'function') socket.setTimeout(ms);
};

/** The request's signal: aborted when its client went away before the answer, or the server stops. */
export const signalOf = (req: FastifyRequest): AbortSignal => signals.get(req) ?? never;

/**
 * Give every request its signal and keep its socket open while its handler runs. `stop` aborts the
 * signals of the requests still running (with its reason) once it is aborted itself.
 */
export function trackInFlight(app: FastifyInstance, connectionTimeout: number, stop: AbortSignal): void {
  const running = new Set<AbortController>();
  stop.addEventListener('abort', () => {
    for (const c of running) c.abort(stop.reason);
  });
  app.addHook('onRequest', (req, reply, done) => {
    const controller = new AbortController();
    signals.set(req, controller.signal);
    if (stop.aborted) controller.abort(stop.reason);
    running.add(controller);
    // 'close' comes after the answer is written, or when the connection ended before it was.
    reply.raw.once('close', () => {
      running.delete(controller);
      if (!reply.raw.writableEnded) controller.abort(err('EDBX_ERR_CANCELLED'));
    });
    done();
  });
  // The request has arrived whole (the request timeout no longer applies to it): the socket's
  // inactivity timeout would cut the answer of a handler that takes longer, with nothing sent or logged.
  app.addHook('preHandler', (req, _reply, done) => {
    idle(req, 0);
    done();
  });
  // The answer is ready: a client that does not read it is an idle client again.
  app.addHook('onSend', (req, _reply, payload, done) => {
    idle(req, connectionTimeout);
    done(null, payload);
  });
}
