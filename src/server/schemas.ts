/**
 * JSON schemas of the REST API: request validation (unknown fields refused) and the OpenAPI document.
 * Query values arrive as strings and are parsed by the handlers, so nothing is coerced silently.
 */
import { MAX_WHOLE } from '../core/names.js';
import { MAX_PAGE } from './paging.js';

const str = { type: 'string' } as const;
const int = { type: 'integer' } as const;
/** Marks a query or path parameter that is a whole number, with its range (see `uint`). */
const WHOLE_NUMBER = 'whole number';
/** The largest whole number a parameter takes anywhere: the handlers refuse unsafe integers. */
export { MAX_WHOLE };

/** The range a handler enforces; no `maximum`: the bound depends on the store (the current size). */
export interface WholeRange {
  readonly minimum: 0 | 1;
  readonly maximum?: number;
}

/**
 * A whole-number query or path parameter. It is validated as text, because the handler parses it and
 * names what is wrong (range, sign, digits), and /openapi.json documents it as an integer with the
 * range the handler enforces (`documented`). The range travels in `$comment`, an annotation the
 * validator ignores.
 */
export const uint = (description: string, range: WholeRange) =>
  ({
    type: 'string',
    $comment: `${WHOLE_NUMBER} ${range.minimum}..${range.maximum ?? ''}`,
    description,
  }) as const;

/** The page size of every listing: the handlers refuse 0 and more than MAX_PAGE (paging.ts). */
export const PAGE_TAKE: WholeRange = { minimum: 1, maximum: MAX_PAGE };
/** Items skipped: 0 upwards. */
export const SKIP: WholeRange = { minimum: 0, maximum: MAX_WHOLE };
/** A version, position or tree size refused above the current one: 1 up to that. */
export const UP_TO_CURRENT: WholeRange = { minimum: 1 };

const RANGE = new RegExp(`^${WHOLE_NUMBER} (\\d+)\\.\\.(\\d*)$`);

/** The properties of a parameter object as /openapi.json shows them (whole numbers as integers). */
function documentedProperties(
  properties: Record<string, Record<string, unknown>>,
): Record<string, Record<string, unknown>> {
  return Object.fromEntries(
    Object.entries(properties).map(([name, p]) => {
      const range = typeof p.$comment === 'string' ? RANGE.exec(p.$comment) : null;
      if (!range) return [name, p];
      const { $comment: _, ...rest } = p;
      const maximum = range[2] ? { maximum: Number(range[2]) } : {};
      return [name, { ...rest, type: 'integer', minimum: Number(range[1]), ...maximum }];
    }),
  );
}

/**
 * A route's schema as /openapi.json shows it: whole-number query and path parameters typed as
 * integers with their range, so generated clients send numbers the server takes. Validation keeps the
 * text schema.
 */
export function documented<T extends object>(schema: T): T {
  let out = schema;
  for (const part of ['querystring', 'params'] as const) {
    const parameters = (out as Record<string, unknown>)[part] as
      { properties?: Record<string, Record<string, unknown>> } | undefined;
    if (!parameters?.properties) continue;
    out = { ...out, [part]: { ...parameters, properties: documentedProperties(parameters.properties) } };
  }
  return out;
}
const hex = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const;
/** A problem's `event` member (EventRef): the event of a transaction it is about. */
const problemEvent = {
  type: 'object',
  description:
    'a refused transaction: the event refused, by its index in `events` and its aggregate (absent when its names are what is wrong)',
  required: ['index'] as string[],
  properties: { index: int, aggregate_type: str, aggregate_id: str },
} as const;
/** RFC 9457 problem details, as every error answer carries them. */
export const problem = {
  title: 'Problem',
  description: 'application/problem+json with a stable `code` (see docs/errors.md)',
  type: 'object',
  required: ['type', 'title', 'status', 'code', 'detail'],
  properties: {
    type: str,
    title: str,
    status: int,
    code: str,
    detail: str,
    instance: str,
    event: problemEvent,
    current_version: {
      ...int,
      description: 'EDBX_ERR_VERSION_CONFLICT: the stored version of the aggregate (0: it does not exist)',
    },
    expected_version: {
      ...int,
      description: 'EDBX_ERR_VERSION_CONFLICT: the version the refused event expected',
    },
  },
} as const;
export const problemResponse = (description: string) =>
  ({ description, content: { 'application/problem+json': { schema: problem } } }) as const;

/** Error answers by status; routes declare those they can return. */
export const errors = {
  400: problemResponse('Bad input: the detail names the argument and what to send'),
  401: problemResponse('Missing, unknown, expired or revoked token'),
  403: problemResponse('The token may not do this (read-only, scope, group, archived or locked)'),
  404: problemResponse('No such aggregate, event, schema, token or plugin'),
  409: problemResponse(
    'Conflict: expected version (with `current_version` and `expected_version`), event id, or state',
  ),
  413: problemResponse('Body, payload or aggregate state over the limit (the code says which)'),
  415: problemResponse('Body is not UTF-8 JSON, or is compressed'),
  422: problemResponse('Refused by the schema of the aggregate type'),
} as const;

/** A proof or checkpoint refused because the stored hashes do not check out (EDBX_ERR_INTEGRITY). */
export const integrityError = {
  500: problemResponse('Stored hashes failed an integrity check (EDBX_ERR_INTEGRITY): nothing is served'),
} as const;

/** What a read can answer (no body: no 409, 413, 415 or 422). */
export const readErrors = { 400: errors[400], 401: errors[401], 403: errors[403], 404: errors[404] } as const;

/** Answers any route can give, added to every route: timeouts, oversized URL or headers, shutting down. */
export const protocolErrors = {
  408: problemResponse('The request did not arrive within the server timeout'),
  414: problemResponse('URL too long: over the limit for the URL and headers (16 KiB)'),
  431: problemResponse('Request headers too large (with the URL, over 16 KiB)'),
  503: problemResponse(
    'The server is shutting down, or holds as many request bodies as it takes at once: retry after Retry-After seconds',
  ),
} as const;

/** Answers only a request whose body the server reads can get (refused by a schema, too large, not JSON). */
const WRITE_ONLY = ['409', '413', '415', '422'];

/**
 * The answers a route declares in /openapi.json: those it lists, plus what its method makes possible
 * on every route. Any route answers 408, 414, 431 and 503; any route of a method with a body answers 413 and
 * 415 (a body is read and refused when too large or not JSON, whether or not the route takes one); a
 * GET or HEAD never answers 409, 413, 415 or 422 (nothing is written, no body is read).
 */
export function declaredResponses(
  method: string | readonly string[],
  response: Record<string, unknown> | undefined,
): Record<string, unknown> {
  // A route without response schemas keeps the default success answer (any JSON) next to them.
  const listed: Record<string, unknown> = { ...(response ?? { 200: { description: 'OK' } }) };
  for (const [status, answer] of Object.entries(protocolErrors)) {
    // A route that gives the status an answer of its own (/health's 503) keeps it, next to the problem.
    const own = listed[status] as { content?: object } | undefined;
    listed[status] = own?.content ? { ...own, content: { ...answer.content, ...own.content } } : answer;
  }
  const reads = [method].flat().every((m) => m === 'GET' || m === 'HEAD');
  if (!reads) return { ...listed, 413: errors[413], 415: errors[415] };
  return Object.fromEntries(Object.entries(listed).filter(([status]) => !WRITE_ONLY.includes(status)));
}

const stringMap = { type: 'object', additionalProperties: str } as const;
const issuedBy = {
  type: 'object',
  properties: {
    group: str,
    user: str,
    // Declared, or the serialiser would drop it and the record would no longer match its leaf hash.
    token: {
      type: 'string',
      description:
        'id of the token the event was written with (as token list and the audit log name it); absent for writes made on the host without a token and for events written before it was recorded',
    },
  },
} as const;

export const eventRecord = {
  type: 'object',
  properties: {
    aggregate_type: str,
    aggregate_id: str,
    event_type: str,
    payload: stringMap,
    metadata: { type: 'object', properties: { event_id: str, created_at: str, issued_by: issuedBy } },
    version: int,
    position: int,
    hash: hex,
    merkle_root: hex,
  },
} as const;

const summary = {
  type: 'object',
  properties: {
    aggregate_type: str,
    aggregate_id: str,
    version: int,
    merkle_root: str,
    archived: { type: 'boolean' },
    updated_at: str,
  },
} as const;

const aggregateView = {
  type: 'object',
  properties: {
    aggregate_type: str,
    aggregate_id: str,
    version: int,
    state: stringMap,
    merkle_root: str,
    archived: { type: 'boolean' },
    created_at: str,
    updated_at: str,
  },
} as const;

const params = {
  type: 'object',
  properties: { aggregate_type: str, aggregate_id: str },
  required: ['aggregate_type', 'aggregate_id'],
} as const;
/** Paging of every list (`skip`, `take`, `cursor`); a listing adds its filters to `properties`. */
export const page = {
  type: 'object',
  properties: {
    skip: uint('skip this many items', SKIP),
    take: uint('page size, 1-1000 (default 100)', PAGE_TAKE),
    cursor: { ...str, description: 'next_cursor of the previous page' },
  },
  additionalProperties: false,
} as const;
/** The cursor of the next page, null on the last. */
export const nextCursor = { type: ['string', 'null'] } as const;
const events = {
  type: 'object',
  properties: { events: { type: 'array', items: eventRecord }, next_cursor: nextCursor },
} as const;

const payload = {
  type: 'object',
  description: 'field → value; numbers and booleans are stored as strings',
  additionalProperties: { type: ['string', 'number', 'boolean'] },
} as const;
const appendBody = {
  type: 'object',
  required: ['event_type', 'payload'],
  additionalProperties: false,
  properties: {
    event_type: str,
    payload,
    expected_version: {
      type: 'integer',
      minimum: 0,
      description: 'optimistic concurrency (0 = new aggregate)',
    },
    event_id: {
      type: 'string',
      minLength: 1,
      maxLength: 128,
      description: 'client id for idempotent retries',
    },
  },
} as const;

export const listAggregates = {
  summary: 'List aggregates',
  querystring: {
    ...page,
    properties: { ...page.properties, type: { ...str, description: 'only this aggregate type' } },
  },
  response: {
    200: {
      type: 'object',
      properties: {
        aggregates: { type: 'array', items: summary },
        next_cursor: nextCursor,
      },
    },
    ...readErrors,
  },
};
export const getAggregate = {
  summary: 'Current state of an aggregate (or at ?version=)',
  params,
  querystring: {
    type: 'object',
    properties: {
      version: uint('the version to rebuild the state at (1 up to the current version)', UP_TO_CURRENT),
    },
    additionalProperties: false,
  },
  response: { 200: aggregateView, ...readErrors },
};
export const listEvents = {
  summary: 'Events of an aggregate, oldest first',
  params,
  querystring: page,
  response: { 200: events, ...readErrors },
};
export const recentEvents = {
  summary: 'The n most recent events, newest first (default 10)',
  params,
  querystring: {
    type: 'object',
    properties: { take: uint('how many events, 1-1000 (default 10)', PAGE_TAKE) },
    additionalProperties: false,
  },
  response: { 200: events, ...readErrors },
};
const versionParams = {
  ...params,
  properties: {
    ...params.properties,
    version: uint('the event version (1 up to the current version)', UP_TO_CURRENT),
  },
  required: [...params.required, 'version'],
};
export const getEvent = {
  summary: 'One event by version',
  params: versionParams,
  response: { 200: eventRecord, ...readErrors },
};
const inclusionProof = {
  type: 'object',
  properties: {
    leaf_index: int,
    tree_size: int,
    leaf_hash: hex,
    audit_path: { type: 'array', items: hex },
    root: hex,
  },
} as const;
export const eventProof = {
  summary: 'RFC 6962 inclusion proof of an event in the aggregate tree',
  params: versionParams,
  querystring: {
    type: 'object',
    properties: {
      tree_size: uint('tree size, from the version up to the current one (default: current)', UP_TO_CURRENT),
    },
    additionalProperties: false,
  },
  response: { 200: inclusionProof, ...readErrors, ...integrityError },
};
export const ledgerProof = {
  summary: 'RFC 6962 inclusion proof of the event at a position in the store-wide ledger tree',
  description:
    'leaf_hash is the hash of the event at `position` (leaf index position - 1); root is the ledger root ' +
    'at tree_size (default: the current size), the root a checkpoint of that size signs. A token ' +
    'limited to some aggregates may ask for the positions of their events (and, issued with --audit, ' +
    'of audit log entries); any other position is refused (403 EDBX_ERR_TOKEN_OUT_OF_SCOPE).',
  querystring: {
    type: 'object',
    properties: {
      position: uint('position of the event (1 = first), at most tree_size', UP_TO_CURRENT),
      tree_size: uint('ledger size, at most the current size (default: the current size)', UP_TO_CURRENT),
    },
    additionalProperties: false,
  },
  response: { 200: inclusionProof, ...readErrors, ...integrityError },
};
export const consistency = {
  summary: 'RFC 6962 consistency proof between two versions of the aggregate tree',
  params,
  querystring: {
    type: 'object',
    properties: {
      from: uint('the older version m, 1 up to n', UP_TO_CURRENT),
      to: uint('the newer version n, up to the current version (default)', UP_TO_CURRENT),
    },
    additionalProperties: false,
  },
  response: {
    200: {
      type: 'object',
      properties: {
        first: int,
        second: int,
        first_root: hex,
        second_root: hex,
        consistency_path: { type: 'array', items: hex },
      },
    },
    ...readErrors,
    ...integrityError,
  },
};
export const verifyReport = {
  type: 'object',
  properties: {
    aggregate_type: str,
    aggregate_id: str,
    ok: { type: 'boolean' },
    version: int,
    merkle_root: str,
    first_bad_version: int,
    reason: str,
  },
} as const;
export const verify = {
  summary: 'Recompute the Merkle tree from the stored events and compare',
  params,
  response: { 200: verifyReport, ...readErrors },
};
export const appendEvent = {
  summary: 'Append an event (201; 200 when an event_id retry returns the original)',
  params,
  headers: {
    type: 'object',
    properties: {
      'if-match': {
        ...str,
        description:
          'expected version, as the ETag of GET …/{aggregate_id} serves it, e.g. "3" (a weak tag is refused with 400; must agree with expected_version)',
      },
      'if-none-match': {
        ...str,
        description:
          '`*` only: append only if the aggregate does not exist yet (expected_version 0); any other value is refused with 400',
      },
    },
  },
  body: appendBody,
  response: { 200: eventRecord, 201: eventRecord, ...errors },
};
export const transaction = {
  summary: 'Append events to several aggregates atomically (all or none)',
  description:
    'If-Match and If-None-Match are refused with 400 EDBX_ERR_INVALID_ARGUMENT (a transaction has no version to match): put expected_version on each event. An event’s expected_version counts the events before it in the transaction.',
  body: {
    type: 'object',
    required: ['events'],
    additionalProperties: false,
    properties: {
      events: {
        type: 'array',
        // No minItems: an empty list is the store's EDBX_ERR_EMPTY_TRANSACTION, not a generic 400.
        description: 'at least one event (none: EDBX_ERR_EMPTY_TRANSACTION), at most 1000',
        maxItems: 1000,
        items: {
          ...appendBody,
          required: ['aggregate_type', 'aggregate_id', ...appendBody.required],
          properties: { aggregate_type: str, aggregate_id: str, ...appendBody.properties },
        },
      },
    },
  },
  response: { 200: events, 201: events, ...errors },
};
