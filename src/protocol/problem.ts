/** Errors on the wire: RFC 9457 `application/problem+json` with the registry's stable `code`. */
import { ERRORS, type ErrorCode, type EventRef, type ProblemMembersByCode } from '../core/errors.js';

export type { ErrorCode, EventRef, ProblemMembersByCode };

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** Every code of the registry (src/core/errors.ts): what this version's server and SDK can raise. */
export const ERROR_CODES: readonly ErrorCode[] = Object.freeze(Object.keys(ERRORS) as ErrorCode[]);

/** A registry code, or one a newer server may add. */
export type ServerErrorCode = ErrorCode | (string & {});

/** The intersection of the members of a union (`A | B` → `A & B`). */
type Every<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void ? I : never;

/**
 * Every extension member of the registry's codes (ProblemMembersByCode), each optional: a problem of
 * any code may carry it. `ProblemOf<C>` says which a code always carries.
 */
type AnyMembers = Partial<Every<ProblemMembersByCode[keyof ProblemMembersByCode]>>;

export interface Problem extends AnyMembers {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly code: ServerErrorCode;
  readonly detail: string;
  readonly instance?: string;
  /**
   * A refused transaction (`POST /v1/transactions`): the event refused, by its index in `events` and
   * its aggregate (absent when its names are what is wrong). `detail` starts with the same,
   * `events[1] (patient/p-031): …`.
   */
  readonly event?: EventRef;
}

/**
 * The problem document of code `C`, with the extension members the server always sends for it
 * required (ProblemMembersByCode): `isApiError(e, 'EDBX_ERR_VERSION_CONFLICT')` narrows
 * `e.problem` to one whose `current_version` and `expected_version` are numbers.
 */
export type ProblemOf<C extends ServerErrorCode> = C extends keyof ProblemMembersByCode
  ? Problem & ProblemMembersByCode[C]
  : Problem;

/** Whether a parsed body is a problem document with the fields every EventDBX error has. */
export function isProblem(v: unknown): v is Problem {
  if (typeof v !== 'object' || v === null) return false;
  const p = v as Record<string, unknown>;
  return typeof p.code === 'string' && typeof p.status === 'number' && typeof p.detail === 'string';
}
