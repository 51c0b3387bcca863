/**
 * Typed errors of the SDK. Every error carries a stable `code`: the server's registry code for API
 * errors, or one of the SDK's own codes (also listed in the registry, src/core/errors.ts).
 *
 * @example
 * try {
 *   await client.append('patient', 'p-001', { event_type: 'x', payload: {}, expected_version: 3 });
 * } catch (e) {
 *   if (isApiError(e, 'EDBX_ERR_VERSION_CONFLICT')) { … reload and retry … }
 * }
 */
import {
  ERROR_CODES,
  type ErrorCode,
  type Problem,
  type ProblemOf,
  type ServerErrorCode,
} from '../protocol/index.js';

/**
 * Every code of this version's registry, for `isApiError(e, code)` and `switch (e.code)`; `ERROR_CODES`
 * lists them at run time. A newer server may send a code not in it (`e.code` is typed to allow that).
 */
export { ERROR_CODES, type ErrorCode };

/** Codes raised by the SDK itself, not sent by a server. */
export type ClientErrorCode =
  | 'EDBX_ERR_CONNECTION'
  | 'EDBX_ERR_UNEXPECTED_RESPONSE'
  | 'EDBX_ERR_CLIENT_CONFIG'
  | 'EDBX_ERR_CANCELLED'
  | VerificationErrorCode;

/** Codes of verification failures: the server's answer does not prove what it should. */
export type VerificationErrorCode =
  | 'EDBX_ERR_PROOF_INVALID'
  | 'EDBX_ERR_CHECKPOINT_SIGNATURE'
  | 'EDBX_ERR_CHECKPOINT_MISMATCH'
  | 'EDBX_ERR_INVALID_CHECKPOINT'
  | 'EDBX_ERR_TRUST_STORE';

/** Base class: `code` is stable, `message` says what happened. */
export class EventDbxClientError extends Error {
  readonly code: ServerErrorCode | ClientErrorCode;
  /** HTTP status for API errors. */
  readonly status: number | undefined;
  /**
   * Attempts of this write that were sent and got no answer (the connection dropped, `timeoutMs`
   * passed, or a gateway answered 502 or 504): each may have been applied. Attempts that provably
   * never reached the server (a refused connection, a name that does not resolve) are not counted;
   * it is 0 for reads, for errors raised before anything was sent, and for a refusal that answers
   * for the earlier attempts too (a 4xx other than 401, 403 and 429). With an `event_id`, send the
   * write again to learn the outcome: if it was applied, the server answers 200 with the original
   * record (`duplicate: true`).
   *
   * @example
   * catch (e) {
   *   if (e instanceof EventDbxClientError && e.unanswered > 0) await reconcileLater(paymentId);
   * }
   */
  readonly unanswered: number;

  constructor(
    code: ServerErrorCode | ClientErrorCode,
    message: string,
    status?: number,
    cause?: unknown,
    unanswered = 0,
  ) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'EventDbxClientError';
    this.code = code;
    this.status = status;
    this.unanswered = unanswered;
  }
}

/**
 * What an error of a write adds when attempts of it got no answer: how many, and (after `note`, which
 * the SDK fills in) how to learn whether it was applied.
 */
export interface Unanswered {
  readonly unanswered: number;
  readonly note: string;
}

/** The server answered with a problem document. */
export class EventDbxApiError extends EventDbxClientError {
  override readonly code: ServerErrorCode;
  override readonly status: number;
  readonly problem: Problem;

  constructor(problem: Problem, after?: Unanswered) {
    super(
      problem.code,
      `${problem.code}: ${problem.detail}${after?.note ?? ''}`,
      problem.status,
      undefined,
      after?.unanswered,
    );
    this.name = 'EventDbxApiError';
    this.code = problem.code;
    this.status = problem.status;
    this.problem = problem;
  }
}

/**
 * The server could not be reached (after the retries allowed), the request timed out, or something in
 * front of it answered 502, 503 or 504 without a problem document (`status` says which; /health's
 * `failing` 503 is an answer, which `health()` returns). When attempts of a write got no answer,
 * `unanswered` counts them and the message says the write may have been applied.
 */
export class EventDbxConnectionError extends EventDbxClientError {
  override readonly code: 'EDBX_ERR_CONNECTION' = 'EDBX_ERR_CONNECTION';
  constructor(message: string, cause?: unknown, status?: number, unanswered?: number) {
    super('EDBX_ERR_CONNECTION', message, status, cause, unanswered);
    this.name = 'EventDbxConnectionError';
  }
}

/**
 * The server's answer is not what the API defines: not JSON, or a 2xx body without the fields of its
 * type (src/protocol/shapes.ts); the message names the first field that is wrong.
 */
export class EventDbxResponseError extends EventDbxClientError {
  override readonly code: 'EDBX_ERR_UNEXPECTED_RESPONSE' = 'EDBX_ERR_UNEXPECTED_RESPONSE';
  constructor(message: string, status?: number, cause?: unknown, unanswered?: number) {
    super('EDBX_ERR_UNEXPECTED_RESPONSE', message, status, cause, unanswered);
    this.name = 'EventDbxResponseError';
  }
}

/**
 * The client is misconfigured (no URL, an unusable option), or a method got an argument it cannot
 * send (a version below 1, an id with a lone surrogate, a payload that is not JSON).
 */
export class EventDbxConfigError extends EventDbxClientError {
  override readonly code: 'EDBX_ERR_CLIENT_CONFIG' = 'EDBX_ERR_CLIENT_CONFIG';
  constructor(message: string) {
    super('EDBX_ERR_CLIENT_CONFIG', message);
    this.name = 'EventDbxConfigError';
  }
}

/**
 * The call's `signal` was aborted (by you, or by an `AbortSignal.timeout()`), before or while it ran,
 * retries and their waits included; `cause` is the signal's reason. A write aborted after it was sent
 * may still have been applied: `unanswered` counts its attempts sent without an answer, the aborted
 * one included. (`subscribe()` is different: aborting it ends the iteration.)
 */
export class EventDbxCancelledError extends EventDbxClientError {
  override readonly code: 'EDBX_ERR_CANCELLED' = 'EDBX_ERR_CANCELLED';
  constructor(reason: unknown, after?: Unanswered) {
    const why = reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason);
    super(
      'EDBX_ERR_CANCELLED',
      `the call was aborted by its signal (${why})${after?.note ?? ''}`,
      undefined,
      reason,
      after?.unanswered,
    );
    this.name = 'EventDbxCancelledError';
  }
}

/** A proof, signature or checkpoint did not verify: do not trust what the server said. */
export class EventDbxVerificationError extends EventDbxClientError {
  override readonly code: VerificationErrorCode;
  constructor(code: VerificationErrorCode, message: string, cause?: unknown) {
    super(code, message, undefined, cause);
    this.name = 'EventDbxVerificationError';
    this.code = code;
  }
}

/**
 * An API error of code `C`: `problem` has the members the server always sends with that code
 * (`ProblemOf<C>`), e.g. `current_version` and `expected_version` of `EDBX_ERR_VERSION_CONFLICT`. For a
 * union of codes, a union of errors that `switch (e.code)` narrows.
 */
export type ApiErrorOf<C extends ErrorCode> = C extends unknown
  ? EventDbxApiError & { readonly code: C; readonly problem: ProblemOf<C> }
  : never;

/**
 * Narrow to an API error, optionally with a given code (one of `ErrorCode`, so a misspelt code does
 * not compile; for a code newer than this SDK, compare `e.code` yourself). With a code, `e.code` is
 * that code and `e.problem` carries what the server always sends with it (`ApiErrorOf`).
 *
 * @example
 * if (isApiError(e, 'EDBX_ERR_VERSION_CONFLICT')) rebaseOn(e.problem.current_version); // a number
 */
export function isApiError<C extends ErrorCode>(e: unknown, code: C): e is ApiErrorOf<C>;
export function isApiError(e: unknown, code?: ErrorCode | undefined): e is EventDbxApiError;
export function isApiError(e: unknown, code?: ErrorCode | undefined): e is EventDbxApiError {
  return e instanceof EventDbxApiError && (code === undefined || e.code === code);
}

/** Narrow to a verification failure, optionally with a given code. */
export function isVerificationError(
  e: unknown,
  code?: VerificationErrorCode | undefined,
): e is EventDbxVerificationError {
  return e instanceof EventDbxVerificationError && (code === undefined || e.code === code);
}

/** Every code the SDK raises itself (a test checks each is in the registry). */
export const CLIENT_ERROR_CODES: readonly ClientErrorCode[] = [
  'EDBX_ERR_CONNECTION',
  'EDBX_ERR_UNEXPECTED_RESPONSE',
  'EDBX_ERR_CLIENT_CONFIG',
  'EDBX_ERR_CANCELLED',
  'EDBX_ERR_PROOF_INVALID',
  'EDBX_ERR_CHECKPOINT_SIGNATURE',
  'EDBX_ERR_CHECKPOINT_MISMATCH',
  'EDBX_ERR_INVALID_CHECKPOINT',
  'EDBX_ERR_TRUST_STORE',
];
