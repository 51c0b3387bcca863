/** Errors on the wire: RFC 9457 `application/problem+json` with the registry's stable `code`. */
import { ERRORS, type ErrorCode, type EventRef } from '../core/errors.js';

export type { ErrorCode, EventRef };

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** Every code of the registry (src/core/errors.ts): what this version's server and SDK can raise. */
export const ERROR_CODES: readonly ErrorCode[] = Object.freeze(Object.keys(ERRORS) as ErrorCode[]);

/** A registry code, or one a newer server may add. */
export type ServerErrorCode = ErrorCode | (string & {});

export interface Problem {
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
  /**
   * `EDBX_ERR_VERSION_CONFLICT`: the aggregate's stored version (what to rebase on; 0 when it does not
   * exist), and the version the refused event expected. When an earlier event of the same transaction
   * moved the aggregate, `current_version` is still the stored one and `detail` names that event.
   */
  readonly current_version?: number;
  readonly expected_version?: number;
}

/** Whether a parsed body is a problem document with the fields every EventDBX error has. */
export function isProblem(v: unknown): v is Problem {
  if (typeof v !== 'object' || v === null) return false;
  const p = v as Record<string, unknown>;
  return typeof p.code === 'string' && typeof p.status === 'number' && typeof p.detail === 'string';
}
