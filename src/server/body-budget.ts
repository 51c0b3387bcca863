/**
 * A bound on the bytes of request bodies the server holds at once, all connections together
 * (`max_buffered_body_bytes`, default 64 MiB): each connection may hold up to the body limit while its
 * client sends (or withholds the last byte of) a body, so without it the memory they take grows with
 * the number of connections (QA full-disk round, finding 3).
 *
 * A body is counted before it is buffered: by its Content-Length when the request arrives, and a
 * chunked one as its chunks arrive. One that would pass the bound is refused with 503
 * EDBX_ERR_BODY_BUFFER_FULL (and Retry-After) before anything is done with it; what it had taken is
 * given back when its answer is sent or its connection closes, whichever comes first, so a client
 * that goes away mid-body leaves nothing counted.
 *
 * Only routes whose method has a body pay for it (a hook is added to them alone); a Content-Length
 * body costs a comparison and one listener, a chunked one a stream that counts its chunks.
 */
import { Transform, type TransformCallback } from 'node:stream';
import type { FastifyReply, FastifyRequest, RouteOptions, preParsingHookHandler } from 'fastify';
import { type EventDbxError, err } from '../core/errors.js';
import { isBodyMethod } from './protocol.js';

export class BodyBudget {
  #held = 0;

  constructor(readonly max: number) {}

  /** Bytes of request bodies held now. */
  get held(): number {
    return this.#held;
  }

  /** Take `bytes` if they fit in what is left; false (nothing taken) if they do not. */
  take(bytes: number): boolean {
    if (this.#held + bytes > this.max) return false;
    this.#held += bytes;
    return true;
  }

  give(bytes: number): void {
    this.#held -= bytes;
  }

  /** The refusal of a body that does not fit. */
  full(): EventDbxError {
    return err('EDBX_ERR_BODY_BUFFER_FULL', { max: this.max });
  }

  /**
   * The preParsing hook of `route`, or undefined for a route whose method has no body. `bodyLimit`:
   * a Content-Length over it is left to fastify, which refuses it (413) without reading it.
   */
  hookFor(route: RouteOptions, bodyLimit: number): preParsingHookHandler | undefined {
    if (![route.method].flat().some(isBodyMethod)) return undefined;
    const limit = route.bodyLimit ?? bodyLimit;
    return (req, reply, payload, done) => {
      const length = req.headers['content-length'];
      if (length !== undefined) {
        const bytes = Number(length);
        // No body, or one fastify refuses unread.
        if (!(bytes > 0) || bytes > limit) return done(null, payload);
        if (!this.take(bytes)) return done(this.full());
        this.#giveBackAtEnd(req, reply, () => bytes);
        return done(null, payload);
      }
      if (req.headers['transfer-encoding'] === undefined) return done(null, payload);
      done(null, this.#counted(req, reply));
    };
  }

  /**
   * Give back what a request took once its answer is sent or its connection closes, once. A request
   * whose client went away before its body ended is given back when it closes: a request behind
   * another on its connection (pipelined) has no socket of its answer's yet, so its answer may never
   * close.
   */
  #giveBackAtEnd(req: FastifyRequest, reply: FastifyReply, taken: () => number): void {
    let given = false;
    const giveBack = () => {
      if (given) return;
      given = true;
      this.give(taken());
    };
    reply.raw.once('close', giveBack);
    req.raw.once('close', () => {
      if (!req.raw.complete) giveBack();
    });
  }

  /** A chunked body, counted as its chunks arrive; one that passes the bound ends in the refusal. */
  #counted(req: FastifyRequest, reply: FastifyReply): Transform {
    let taken = 0;
    const budget = this;
    const raw = req.raw;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
        if (!budget.take(chunk.length)) {
          // The rest is read and dropped (held nowhere), so the answer reaches a client still sending.
          raw.unpipe(counter);
          raw.resume();
          callback(budget.full());
          return;
        }
        taken += chunk.length;
        callback(null, chunk);
      },
    });
    this.#giveBackAtEnd(req, reply, () => taken);
    raw.on('error', (e) => counter.destroy(e));
    raw.pipe(counter);
    return counter;
  }
}
