/**
 * The one error registry. Every error a user can see has a stable code (the contract), an HTTP status
 * and a one-line message template saying what to fix. Messages may change; codes may not.
 * Edges (HTTP, CLI) map errors with `toProblem` / `exitCodeFor`; nothing else formats errors.
 */

export type ErrorKind = 'usage' | 'user' | 'internal';

interface ErrorSpec {
  readonly status: number;
  readonly kind: ErrorKind;
  readonly message: (p: Record<string, unknown>) => string;
  readonly doc: string;
}

const s = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : String(v));

export const ERRORS = {
  // --- input validation (400) ---
  EDBX_ERR_INVALID_AGGREGATE_TYPE: {
    status: 400,
    kind: 'user',
    message: (p) => `invalid aggregate type ${s(p.value)}: use 1-64 characters of a-z, 0-9, '_' or '-'`,
    doc: 'An aggregate type breaks the naming rule (lowercase [a-z0-9_-], 1-64 characters).',
  },
  EDBX_ERR_INVALID_AGGREGATE_ID: {
    status: 400,
    kind: 'user',
    message: (p) =>
      `invalid aggregate id ${s(p.value)}: use 1-128 printable characters without control characters or '/'`,
    doc: 'An aggregate id is empty, longer than 128 characters, or contains a control character or "/".',
  },
  EDBX_ERR_INVALID_EVENT_TYPE: {
    status: 400,
    kind: 'user',
    message: (p) => `invalid event type ${s(p.value)}: use 1-64 characters of a-z, 0-9, '_' or '-'`,
    doc: 'An event type breaks the naming rule (lowercase [a-z0-9_-], 1-64 characters).',
  },
  EDBX_ERR_INVALID_FIELD_NAME: {
    status: 400,
    kind: 'user',
    message: (p) =>
      `invalid field name ${s(p.value)}: use 1-128 printable characters without control characters`,
    doc: 'A payload field name is empty, too long or contains control characters.',
  },
  EDBX_ERR_INVALID_FIELD_VALUE: {
    status: 400,
    kind: 'user',
    message: (p) =>
      `field ${s(p.field)} is ${p.actual}: payload values must be strings (numbers and booleans are stored as strings)`,
    doc: 'A payload value is an object, array or null; EventDBX stores strings only.',
  },
  EDBX_ERR_INVALID_PAYLOAD: {
    status: 400,
    kind: 'user',
    message: (p) => `payload must be a JSON object of field names to string values, got ${p.actual}`,
    doc: 'The payload is not a JSON object.',
  },
  EDBX_ERR_PAYLOAD_TOO_LARGE: {
    status: 413,
    kind: 'user',
    message: (p) =>
      `payload is ${p.size} bytes, over the limit of ${p.limit} bytes (config: max_payload_bytes)`,
    doc: 'The encoded payload exceeds the configured limit (default 256 KiB).',
  },
  EDBX_ERR_INVALID_VERSION: {
    status: 400,
    kind: 'user',
    message: (p) => `invalid version ${s(p.value)}: ${p.reason ?? 'use a whole number >= 1'}`,
    doc: 'A version argument is not a positive whole number, or is beyond the aggregate’s current version.',
  },
  EDBX_ERR_INVALID_EXPECTED_VERSION: {
    status: 400,
    kind: 'user',
    message: (p) =>
      `invalid expected version ${s(p.value)}: use a whole number >= 0 (0 = the aggregate must not exist)`,
    doc: 'An expected version is not a whole number >= 0.',
  },
  EDBX_ERR_INVALID_EVENT_ID: {
    status: 400,
    kind: 'user',
    message: (p) => `invalid event id ${s(p.value)}: use 1-128 printable characters (a UUID is recommended)`,
    doc: 'A client-supplied event id is empty, too long or has control characters.',
  },
  EDBX_ERR_INVALID_ARGUMENT: {
    status: 400,
    kind: 'user',
    message: (p) => `invalid ${p.name} ${s(p.value)}: ${p.reason}`,
    doc: 'An argument is malformed; the message names it and says what is expected.',
  },
  EDBX_ERR_INVALID_PROOF_RANGE: {
    status: 400,
    kind: 'user',
    message: (p) => `invalid proof range: ${p.reason}`,
    doc: 'A proof was requested for a leaf or tree size outside the tree.',
  },
  EDBX_ERR_EMPTY_TRANSACTION: {
    status: 400,
    kind: 'user',
    message: () => 'nothing to commit: the transaction holds no events',
    doc: 'An atomic append or `aggregate commit` was given no events.',
  },
  EDBX_ERR_USAGE: {
    status: 400,
    kind: 'usage',
    message: (p) => String(p.reason),
    doc: 'The command line is malformed (unknown flag, missing required flag, bad flag value).',
  },

  // --- not found (404) ---
  EDBX_ERR_AGGREGATE_NOT_FOUND: {
    status: 404,
    kind: 'user',
    message: (p) => `aggregate ${p.aggregate_type}/${p.aggregate_id} does not exist`,
    doc: 'The aggregate has no events.',
  },
  EDBX_ERR_EVENT_NOT_FOUND: {
    status: 404,
    kind: 'user',
    message: (p) =>
      `aggregate ${p.aggregate_type}/${p.aggregate_id} has no version ${p.version} (current version ${p.current})`,
    doc: 'The requested version is beyond the aggregate’s current version.',
  },

  // --- conflicts (409) ---
  EDBX_ERR_VERSION_CONFLICT: {
    status: 409,
    kind: 'user',
    message: (p) =>
      `version conflict on ${p.aggregate_type}/${p.aggregate_id}: expected version ${p.expected}, current version is ${p.actual}; reload and retry`,
    doc: 'Optimistic concurrency: the expected version did not match; nothing was written.',
  },
  EDBX_ERR_EVENT_ID_CONFLICT: {
    status: 409,
    kind: 'user',
    message: (p) => `event id ${s(p.event_id)} was already used for a different event; use a new event id`,
    doc: 'An event id was reused with a different aggregate, event type or payload.',
  },
  EDBX_ERR_DUPLICATE_EVENT_ID: {
    status: 400,
    kind: 'user',
    message: (p) => `event id ${s(p.event_id)} appears more than once in the same transaction`,
    doc: 'A transaction carries the same client event id twice.',
  },

  // --- refused (403) ---
  EDBX_ERR_AGGREGATE_ARCHIVED: {
    status: 403,
    kind: 'user',
    message: (p) =>
      `aggregate ${p.aggregate_type}/${p.aggregate_id} is archived: restore it with \`eventdbx aggregate restore\` before appending`,
    doc: 'Appends to an archived aggregate are refused.',
  },
  EDBX_ERR_AGGREGATE_NOT_ARCHIVED: {
    status: 409,
    kind: 'user',
    message: (p) => `aggregate ${p.aggregate_type}/${p.aggregate_id} is not archived`,
    doc: 'Restore was asked for an aggregate that is not archived.',
  },
  EDBX_ERR_AGGREGATE_ALREADY_ARCHIVED: {
    status: 409,
    kind: 'user',
    message: (p) => `aggregate ${p.aggregate_type}/${p.aggregate_id} is already archived`,
    doc: 'Archive was asked for an aggregate that is already archived.',
  },

  // --- integrity ---
  EDBX_ERR_INTEGRITY: {
    status: 500,
    kind: 'user',
    message: (p) => `integrity check failed for ${p.where}: ${p.reason}`,
    doc: 'Stored data does not match its Merkle hashes or could not be decoded: the store was altered or corrupted.',
  },

  // --- storage / configuration ---
  EDBX_ERR_STORE_LOCKED: {
    status: 503,
    kind: 'user',
    message: (p) =>
      `data dir ${p.path} is in use by another process (a running server?); stop it or use its API`,
    doc: 'RocksDB allows one process per data dir; another process has it open.',
  },
  EDBX_ERR_STORE_NOT_OPEN: {
    status: 503,
    kind: 'internal',
    message: () => 'the store is not open',
    doc: 'An operation was attempted on a closed store.',
  },
  EDBX_ERR_STORE_IO: {
    status: 500,
    kind: 'user',
    message: (p) => `storage error: ${p.reason}`,
    doc: 'The storage engine reported an I/O error.',
  },
  EDBX_ERR_CONFIG_MISSING: {
    status: 400,
    kind: 'user',
    message: (p) =>
      `no configuration at ${p.path}: create one with \`eventdbx config --master-key <secret> --dek <secret>\``,
    doc: 'No configuration file exists yet.',
  },
  EDBX_ERR_CONFIG_KEYS_REQUIRED: {
    status: 400,
    kind: 'user',
    message: () => 'the first configuration must include both --master-key and --dek',
    doc: 'The first `config` call must set both keys.',
  },
  EDBX_ERR_CONFIG_INVALID: {
    status: 400,
    kind: 'user',
    message: (p) => `configuration ${p.path} is invalid: ${p.reason}`,
    doc: 'The configuration file is not valid JSON or has a bad value.',
  },
  EDBX_ERR_NOT_SUPPORTED: {
    status: 501,
    kind: 'user',
    message: (p) => `${p.feature} is not supported by the ${p.engine} engine`,
    doc: 'The storage engine lacks a feature.',
  },
  EDBX_ERR_INTERNAL: {
    status: 500,
    kind: 'internal',
    message: (p) => `internal error: ${p.reason ?? 'unexpected failure'}`,
    doc: 'An unexpected failure; please report it.',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** The one error class. `params` are safe to show to the user: never put secrets in them. */
export class EventDbxError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly params: Record<string, unknown>;

  constructor(code: ErrorCode, params: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    const spec: ErrorSpec = ERRORS[code];
    super(spec.message(params), options);
    this.name = 'EventDbxError';
    this.code = code;
    this.status = spec.status;
    this.params = params;
  }

  get kind(): ErrorKind {
    return (ERRORS[this.code] as ErrorSpec).kind;
  }
}

export const err = (code: ErrorCode, params: Record<string, unknown> = {}, cause?: unknown): EventDbxError =>
  new EventDbxError(code, params, cause === undefined ? undefined : { cause });

export const isEventDbxError = (e: unknown, code?: ErrorCode): e is EventDbxError =>
  e instanceof EventDbxError && (code === undefined || e.code === code);

/** Wrap anything thrown into a registry error (unknown errors become EDBX_ERR_INTERNAL). */
export function toEventDbxError(e: unknown): EventDbxError {
  if (e instanceof EventDbxError) return e;
  const reason = e instanceof Error ? e.message : String(e);
  return err('EDBX_ERR_INTERNAL', { reason }, e);
}

/** CLI exit codes: 0 ok, 1 user error, 2 usage error. Internal errors are also 1 (with the code shown). */
export function exitCodeFor(e: EventDbxError): 1 | 2 {
  return e.kind === 'usage' ? 2 : 1;
}
