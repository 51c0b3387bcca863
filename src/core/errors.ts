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
  /**
   * What an HTTP client is told instead of the message, when the message may name the server's files
   * (a storage engine's error quotes its paths): the client gets the code and this; the server's log,
   * and the CLI (whose user is the operator), the full message.
   */
  readonly publicDetail?: (p: Record<string, unknown>) => string;
  /**
   * Extension members of the problem document (RFC 9457 §3.2), from the parameters: what a client
   * acts on (a version to rebase on) without reading it out of the message.
   */
  readonly members?: (p: Record<string, unknown>) => Record<string, unknown>;
  readonly doc: string;
}

/** What a server whose write failed does until it is restarted (its /health, log and refusals say it). */
export const WRITES_REFUSED =
  'every write is refused until the cause is fixed and the server restarted (`eventdbx restart`)';

/**
 * Invisible and direction-changing characters (format characters such as zero-width and bidi
 * controls, and every default-ignorable code point: fillers, variation selectors, tags), and
 * separators other than the space. Ids refuse them (two ids that look the same must be the same id);
 * messages escape them.
 */
export const INVISIBLE = /[\p{Cf}\p{Default_Ignorable_Code_Point}\p{Zl}\p{Zp}]|(?! )\p{Zs}/u;
/** What a message escapes: the invisible characters, and DEL and C1 controls a terminal would act on. */
const UNSEEN = new RegExp(`[\\u007f-\\u009f]|${INVISIBLE.source}`, 'gu');
/** Longest shown value, in characters: a message quotes what was sent, never echoes a whole body. */
const SHOWN = 80;

/**
 * A value as a message shows it: strings JSON-quoted and objects as JSON, every unseen character
 * escaped, long ones cut with their length (a message stays one readable line, whatever was sent).
 */
export function shown(v: unknown): string {
  if (typeof v !== 'string' && (typeof v !== 'object' || v === null)) return String(v);
  // A BigInt (a whole number beyond 2^53−1 as sent) has no JSON form: its digits, as text.
  const raw =
    typeof v === 'string'
      ? v
      : JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? String(x) : x));
  const chars = raw.length > SHOWN ? Array.from(raw) : undefined; // code points: never cut one in half
  const long = chars !== undefined && chars.length > SHOWN;
  const text = long ? chars.slice(0, SHOWN - 20).join('') : raw;
  const out = (typeof v === 'string' ? JSON.stringify(text) : text).replace(UNSEEN, (c) => {
    const cp = c.codePointAt(0)!;
    return cp > 0xffff ? `\\u{${cp.toString(16)}}` : `\\u${cp.toString(16).padStart(4, '0')}`;
  });
  if (!long) return out;
  return typeof v === 'string'
    ? `${out.slice(0, -1)}…" (${chars.length} characters)`
    : `${out}… (${chars.length} characters)`;
}
const s = shown;

/** A word as a POSIX shell reads it back (in a command a message shows): plain, or single-quoted. */
export const shellWord = (v: unknown): string => {
  const t = String(v);
  return /^[A-Za-z0-9_./,:@%+=-]+$/.test(t) ? t : `'${t.replace(/'/g, `'\\''`)}'`;
};

/** Names of directory entries in a message: the first few, quoted, and how many more. */
const listed = (names: unknown): string => {
  if (!Array.isArray(names) || names.length === 0) return 'other entries';
  const more = names.length > 5 ? ` and ${names.length - 5} more` : '';
  return names.slice(0, 5).map(s).join(', ') + more;
};

/**
 * Where a delivery failure points for the data it may not quote: the command that shows the aggregate
 * as of the event (its state holds every value the event set).
 */
const seeEvent = (p: Record<string, unknown>): string =>
  `\`eventdbx aggregate get --aggregate ${p.aggregate_type} --aggregate-id ${shellWord(p.aggregate_id)} --version ${p.version}\``;

/**
 * The open-files limit a process out of descriptors is told to raise to at least: what any command
 * needs to load and open a store (about 130 measured), or twice a limit that was already above that.
 */
export const SUGGESTED_OPEN_FILES = 256;

/** How to raise the open-files limit to `n`: the shell's and systemd's ways. */
const raiseOpenFiles = (n: unknown): string =>
  `\`ulimit -n ${n}\` in the shell that starts eventdbx, or \`LimitNOFILE=${n}\` in its systemd unit`;

/**
 * EDBX_ERR_TOO_MANY_OPEN_FILES: a server refused at start (`start`: its limit leaves too few
 * connections), the system's open-file table full (ENFILE), or this process's limit used up (EMFILE).
 */
function tooManyOpenFiles(p: Record<string, unknown>): string {
  if (p.start)
    return `the open-files limit (\`ulimit -n\`) is ${p.limit}: the server keeps ${p.reserved} descriptors for its store (${p.tables}), its plugins (${p.plugins}) and CLI commands, which leaves ${p.left} for connections, fewer than ${p.floor}; raise it to at least ${p.needed} (${p.wanted} for all ${p.configured} max_connections): ${raiseOpenFiles(p.wanted)}`;
  if (p.errno === 'ENFILE')
    return `too many files open on this system (${p.reason}): its table of open files is full; close files other processes hold, or raise \`fs.file-max\` (sysctl), then run the command again`;
  const limit = typeof p.limit === 'number' ? p.limit : undefined;
  const needed = Math.max(SUGGESTED_OPEN_FILES, 2 * (limit ?? 0));
  const has = limit === undefined ? '' : `: this process may have ${limit} files open (its open-files limit)`;
  return `too many open files (${p.reason})${has}; raise the limit to at least ${needed}: ${raiseOpenFiles(needed)}, then run the command again`;
}

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
      `invalid aggregate id ${s(p.value)}: ${p.reason ?? "use 1-128 visible characters without control characters, '/' or spaces at either end (not '.' or '..')"}`,
    doc: 'An aggregate id is empty, longer than 128 characters, contains a control or invisible character (zero-width, bidi control) or "/", starts or ends with a space, or is "." or ".."; or the id of a new aggregate is not in Unicode NFC (send it in NFC).',
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
      `invalid field name ${s(p.value)}: ${p.reason ?? 'use 1-128 visible characters without control or invisible characters or spaces at either end (not "__proto__")'}`,
    doc: 'A field name (of a payload, a schema or a plugin column mapping) is empty, longer than 128 characters, contains a control or invisible character (zero-width, bidi control), starts or ends with a space, is not in Unicode NFC (send it in NFC), or is "__proto__" (which JavaScript consumers cannot hold as a plain field); a field a schema declares also holds no comma (the CLI\'s lists are comma-separated). Names already stored stay readable.',
  },
  EDBX_ERR_INVALID_FIELD_VALUE: {
    status: 400,
    kind: 'user',
    message: (p) =>
      p.reason !== undefined
        ? `field ${s(p.field)} ${p.reason}`
        : `field ${s(p.field)} is ${p.actual}: payload values must be strings (numbers and booleans are stored as strings)`,
    doc: 'A payload value is an object, array or null (EventDBX stores strings only), or a string holding a NUL or a lone surrogate.',
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
  EDBX_ERR_STATE_TOO_LARGE: {
    status: 413,
    kind: 'user',
    message: (p) =>
      `aggregate ${p.aggregate_type}/${p.aggregate_id} would hold ${p.size} bytes of state, over the limit of ${p.limit} bytes (config: max_state_bytes): start a new aggregate for further events (and archive this one), or raise the limit`,
    doc: 'An append would make an aggregate’s state (all its fields, measured as a payload is) larger than the configured limit (default 16 MiB). Nothing is written. An aggregate already over the limit stays readable and takes appends that do not grow its state.',
  },
  EDBX_ERR_INVALID_VERSION: {
    status: 400,
    kind: 'user',
    message: (p) =>
      `invalid version ${s(p.value)}: ${p.reason ?? `use a whole number from 1 to ${Number.MAX_SAFE_INTEGER}`}`,
    doc: 'A version argument is not a whole number from 1 to 2^53−1, or is beyond the aggregate’s current version.',
  },
  EDBX_ERR_INVALID_EXPECTED_VERSION: {
    status: 400,
    kind: 'user',
    message: (p) =>
      `invalid expected version ${s(p.value)}: use a whole number from 0 to ${Number.MAX_SAFE_INTEGER} (0 = the aggregate must not exist)`,
    doc: 'An expected version is not a whole number from 0 to 2^53−1.',
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
    // A missing argument has no value to quote (`undefined` is not JSON): it is named as required.
    message: (p) =>
      p.missing ? `${p.name} is required: send it` : `invalid ${p.name} ${s(p.value)}: ${p.reason}`,
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
    doc: 'An atomic append (`POST /v1/transactions`, `appendMany`) was given no events.',
  },
  EDBX_ERR_STAGED_EVENT_REFUSED: {
    status: 409,
    kind: 'user',
    message: (p) =>
      // The cause's code in words, not in brackets: the line ends with this error's code alone.
      `staged event #${p.seq} (${p.event}) cannot be appended (cause ${p.cause}): ${p.reason}; fix the cause and commit again, or drop the stage with \`eventdbx aggregate commit --discard\``,
    doc: 'A staged event is refused at commit (or when a later event is staged): nothing is committed and the stage is kept. The message names the staged event and the cause.',
  },
  EDBX_ERR_PORT_IN_USE: {
    status: 409,
    kind: 'user',
    message: (p) =>
      `port ${p.port}${p.host === undefined ? '' : ` on ${p.host}`} is already in use: stop what listens there or choose another with --port`,
    doc: 'The server cannot listen on its port because another process already does.',
  },
  EDBX_ERR_USAGE: {
    status: 400,
    kind: 'usage',
    message: (p) => String(p.reason),
    doc: 'The command (or request) is malformed or incomplete: an unknown command or flag, a required flag or part missing. A bad value is EDBX_ERR_INVALID_ARGUMENT or a specific code.',
  },

  // --- not found (404) ---
  EDBX_ERR_AGGREGATE_NOT_FOUND: {
    status: 404,
    kind: 'user',
    message: (p) => `aggregate ${p.aggregate_type}/${p.aggregate_id} does not exist`,
    doc: 'The aggregate has no events.',
  },
  EDBX_ERR_POSITION_BEYOND_HEAD: {
    status: 416,
    kind: 'user',
    message: (p) =>
      `${p.name} ${p.value} is beyond the end of the log (the store holds ${p.size} positions, so at most ${Number(p.size) + 1}, the next one): if you saved it from this store, the store was restored from a backup since; reread from a position it holds (1 = the first)`,
    doc: "A stream was asked to start (`from`, `Last-Event-ID`) past the next position the store will write: the position was saved from history this store no longer has (it was restored from a backup) or from another store. Answered before the stream starts; the SDK's `subscribe()` throws it instead of reconnecting.",
  },
  EDBX_ERR_TOO_MANY_STREAMS: {
    status: 429,
    kind: 'user',
    message: (p) =>
      `token ${p.id} already has ${p.open} event streams open, the most one token may have (max_streams_per_token ${p.max}): end one first, or give each consumer its own token`,
    doc: "An event stream was asked for with a token that already has `max_streams_per_token` streams open (default 16; the config file's `max_streams_per_token` or `EVENTDBX_MAX_STREAMS_PER_TOKEN`). Nothing was started; counted in `eventdbx_stream_refused_total`. The SDK's `subscribe()` throws it instead of reconnecting.",
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
    // `actual`: the version the event would follow; `current`: the stored one. They differ when an
    // earlier event of the same transaction (`within`, `by` its index) or stage (`by` its number)
    // moved the aggregate: reloading would not help, the request itself is wrong.
    message: (p) => {
      const on = `version conflict on ${p.aggregate_type}/${p.aggregate_id}: expected version ${p.expected}`;
      if (p.within === undefined) return `${on}, current version is ${p.actual}; reload and retry`;
      const [by, field, before] =
        p.within === 'stage'
          ? [`staged event #${p.by}`, '--expected-version', 'staged before it']
          : [`events[${p.by}] of this transaction`, 'expected_version', 'before it'];
      return `${on}, but ${by} makes it ${p.actual}: an event's ${field} counts the events ${before} (the stored version is ${p.current}; expect ${p.actual}, or give ${field} on the first event only)`;
    },
    // Both are always numbers (src/store/tx.ts); typed here, the SDK's `ProblemOf<C>` reads them from this.
    members: (
      p,
    ): {
      /**
       * The aggregate's stored version (what to rebase on; 0 when it does not exist). When an earlier
       * event of the same transaction moved the aggregate, it is still the stored one and `detail` names
       * that event.
       */
      current_version: number;
      /** The version the refused event expected. */
      expected_version: number;
    } => ({ current_version: (p.current ?? p.actual) as number, expected_version: p.expected as number }),
    doc: 'Optimistic concurrency: the expected version did not match; nothing was written. The problem carries `current_version` (the stored version) and `expected_version` (numbers). When an earlier event of the same transaction or stage moved the aggregate past the version expected, the message says which (an event’s expected version counts the events before it) and does not say to reload.',
  },
  EDBX_ERR_EVENT_ID_CONFLICT: {
    status: 409,
    kind: 'user',
    message: (p) =>
      `event id ${s(p.event_id)} was already used ${p.reason ?? 'for a different event'}; ${p.advice ?? 'use a new event id'}`,
    doc: 'An event id was reused with a different aggregate, event type, payload or author, or a transaction mixes events already appended with new ones (a retried transaction repeats all of its events). Staged (`aggregate apply --stage`), the message names the event appended under the id and what differs; the same event staged again is no error (`already appended`, nothing staged).',
  },
  EDBX_ERR_DUPLICATE_EVENT_ID: {
    status: 400,
    kind: 'user',
    message: (p) =>
      p.staged === undefined
        ? `event id ${s(p.event_id)} appears more than once in the same transaction`
        : `event id ${s(p.event_id)} is already staged (${p.staged}), which differs from this event in ${p.differs}; nothing was staged: to replace it, drop the stage with \`eventdbx aggregate commit --discard\` (every staged event) and stage again; if it is another event, give it a new event id`,
    doc: 'A transaction carries the same client event id twice, or an event is staged (`aggregate apply --stage`) under the event id of a different staged event: the message names the staged event and what differs. The same event staged again is no error (`already staged`).',
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
    // `summary`: the reason without the server's files, for a reason that names them.
    publicDetail: (p) =>
      `integrity check failed for ${p.where}: ${p.summary ?? p.reason}${p.summary ? "; the server's log has the rest" : ''}`,
    doc: "Stored data does not match its Merkle hashes or could not be decoded: the store was altered or corrupted. When the reason names the server's files (a store that lost acknowledged events), HTTP clients get it without them; the server's log and the CLI show it whole.",
  },

  // --- keys ---
  EDBX_ERR_WRONG_MASTER_KEY: {
    status: 401,
    kind: 'user',
    message: (p) => {
      const b = p.backup as Record<string, unknown> | undefined;
      if (p.unsaved !== undefined)
        return `the master key given does not open the store already in ${p.unsaved}: give its master key (--master-key or EVENTDBX_MASTER_KEY); nothing was saved`;
      if (b === undefined)
        return 'the master key does not match this data dir: check --master-key / EVENTDBX_MASTER_KEY (or the config file)';
      return `this data dir is a backup taken at ${b.taken_at} under the master key with fingerprint ${b.backup_key}, and the master key given has fingerprint ${b.given}: a backup opens only with the master key in force when it was taken, also after a rotation; give that key (EVENTDBX_MASTER_KEY, or \`eventdbx config --master-key <that key>\`)`;
    },
    doc: 'The master key does not unlock the keyring of the data dir. The key itself is never shown. A new configuration (or one moved to another data dir) naming a data dir that already holds a store is refused, unsaved, when its master key does not open it. On a restored backup the message names the fingerprint of the master key the backup was taken under (its `backup.json`) and that of the key given: a backup needs the keys in force when it was taken.',
  },

  // --- authentication (401) and authorisation (403) ---
  EDBX_ERR_TOKEN_MISSING: {
    status: 401,
    kind: 'user',
    message: () =>
      'missing token: send `Authorization: Bearer <token>` (create one with `eventdbx token generate`)',
    doc: 'The request has no bearer token.',
  },
  EDBX_ERR_TOKEN_MALFORMED: {
    status: 401,
    kind: 'user',
    message: () =>
      'malformed token: expected `Authorization: Bearer edbx_…` with the token printed by `token generate`',
    doc: 'The Authorization header is not `Bearer <token>` or the token does not have the EventDBX shape.',
  },
  EDBX_ERR_TOKEN_UNKNOWN: {
    status: 401,
    kind: 'user',
    message: () => 'unknown token: it was never issued by this store',
    doc: 'No token with this value exists.',
  },
  EDBX_ERR_TOKEN_EXPIRED: {
    status: 401,
    kind: 'user',
    message: (p) => `token ${p.id} expired at ${p.at}: refresh it with \`eventdbx token refresh\``,
    doc: 'The token is past its expiry.',
  },
  EDBX_ERR_TOKEN_REVOKED: {
    status: 401,
    kind: 'user',
    message: (p) => `token ${p.id} was revoked`,
    doc: 'The token was revoked.',
  },
  EDBX_ERR_TOKEN_DISTRUSTED: {
    status: 401,
    kind: 'user',
    message: (p) =>
      `token ${p.id} is refused: its stored record is not what the audit log says (put back from an older copy?); an admin can see why with \`eventdbx audit verify\` and refresh or revoke it`,
    doc: "The token's stored record differs from what the audit log recorded for it (an expiry, allowance or revocation put back from an older copy of the data dir, or a record the log never generated); the server refuses it from its start until an admin refreshes or revokes it.",
  },
  EDBX_ERR_TOKEN_EXHAUSTED: {
    status: 403,
    kind: 'user',
    message: (p) =>
      p.needed === undefined
        ? `token ${p.id} has used its ${p.limit} writes: a token refresh with a new limit gives it more`
        : `token ${p.id} has ${p.remaining} write${p.remaining === 1 ? '' : 's'} left and this request needs ${p.needed}: nothing was written; a token refresh with a new limit gives it more`,
    doc: 'The token has no writes left, or fewer than the request (a transaction) would write.',
  },
  EDBX_ERR_TOKEN_ALREADY_REVOKED: {
    status: 409,
    kind: 'user',
    message: (p) =>
      `token ${p.id} is already revoked (at ${p.at}): it cannot be revoked again or refreshed; issue a new token instead`,
    doc: 'Revoke or refresh was asked for a token that is already revoked (nothing changes, nothing is audited).',
  },
  EDBX_ERR_TOKEN_EXPIRATION_REQUIRED: {
    status: 409,
    kind: 'user',
    message: (p) =>
      `token ${p.id} expired at ${p.at}: a refresh of an expired token must give a new expiration (seconds from now)`,
    doc: 'A refresh of an expired token gave only a limit: it would stay expired.',
  },
  EDBX_ERR_TOKEN_READ_ONLY: {
    status: 403,
    kind: 'user',
    message: (p) => `token ${p.id} is read-only and cannot write`,
    doc: 'A read-only token was used for a write.',
  },
  EDBX_ERR_TOKEN_OUT_OF_SCOPE: {
    status: 403,
    kind: 'user',
    message: (p) => `token ${p.id} may not access ${p.aggregate}`,
    doc: 'The token is limited to other aggregates: their events, states, schemas and ledger proofs only (and, issued with `--audit`, the audit log and its ledger proofs).',
  },
  EDBX_ERR_GROUP_NOT_ALLOWED: {
    status: 403,
    kind: 'user',
    message: (p) =>
      p.audit
        ? `group ${JSON.stringify(p.group)} may not read the audit log: use a token issued with --audit (any group), or of group "admin"`
        : `group ${JSON.stringify(p.group)} may not administer (tokens, schemas, plugins): only group "admin" may`,
    doc: 'Only tokens of group admin may use administrative endpoints; the audit log is also open to tokens issued with `--audit`.',
  },
  EDBX_ERR_GROUP_RESERVED: {
    status: 400,
    kind: 'user',
    message: (p) =>
      `group ${s(p.group)} is reserved for writes made on the host without a token (recorded as local/<OS user>): issue the token for another group`,
    doc: 'Token generation for group local (in any case) was refused: events attributed to local/<user> must be writes made on the host by the CLI without a token.',
  },
  EDBX_ERR_DEK_MISMATCH: {
    status: 403,
    kind: 'user',
    message: (p) => {
      const b = p.backup as Record<string, unknown> | undefined;
      if (p.unsaved !== undefined)
        return `the data encryption key given ${p.what} (the store already in ${p.unsaved}): give its active key (--dek or EVENTDBX_DEK); nothing was saved`;
      if (b === undefined)
        return `the data encryption key given (config file or EVENTDBX_DEK) ${p.what}: give the active key; to rotate to a new one, run \`eventdbx config --dek <new>\``;
      return `this data dir is a backup taken at ${b.taken_at} with the DEK of fingerprint ${b.backup_key} active (key id ${b.key_id}), and the DEK given has fingerprint ${b.given} (it ${p.what}): a backup opens only with the DEK active when it was taken, also after a rotation; give that DEK (EVENTDBX_DEK, or \`eventdbx config --dek <that DEK>\`)`;
    },
    doc: "The DEK configured does not match the store's active key. Opening never rotates keys (that is `config --dek`, which is audited); nothing was changed. A new configuration naming a data dir that already holds a store is refused, unsaved, when its DEK is not the store's active one. On a restored backup the message names the fingerprint of the DEK that was active when the backup was taken (its `backup.json`) and that of the DEK given.",
  },
  EDBX_ERR_ADMIN_TOKEN_RESTRICTED: {
    status: 403,
    kind: 'user',
    message: (p) =>
      p.audit
        ? `token ${p.id} is limited (${p.limits}): reading the audit log needs a token issued with --audit, or an admin token without aggregate scopes or a write limit`
        : `token ${p.id} is limited (${p.limits}): managing tokens, schemas or plugins needs an admin token without aggregate scopes or a write limit`,
    doc: 'An admin token with aggregate scopes or a write limit may not administer: it could otherwise issue tokens beyond its own limits. It reads the audit log only if issued with `--audit`.',
  },
  EDBX_ERR_TOKEN_OUTLIVES_ADMIN: {
    status: 403,
    kind: 'user',
    message: (p) =>
      `token ${p.id} is an admin token that expires at ${p.at}, and the token it ${p.action} ${p.why}: a token issued or refreshed with it must expire by then, without --keep-alive (an expiration of at most ${p.seconds} seconds); or use an admin token without an expiry, or \`eventdbx token generate\` on the server's host`,
    doc: 'An admin token with an expiry issued or refreshed a token that would outlive it (no expiry, a later one, or a sliding `--keep-alive` one): a temporary admin could otherwise extend itself or leave a lasting admin token behind. Nothing changed.',
  },
  EDBX_ERR_TOKEN_NOT_FOUND: {
    status: 404,
    kind: 'user',
    message: (p) =>
      `no token matches ${JSON.stringify(p.token)}: give the full token or its id, as token listings show it`,
    doc: 'token revoke/refresh could not find the token.',
  },

  // --- HTTP ---
  EDBX_ERR_ROUTE_NOT_FOUND: {
    status: 404,
    kind: 'user',
    message: (p) => `no route ${p.method} ${p.url}: see /openapi.json for the API`,
    doc: 'The HTTP method and path match no endpoint.',
  },
  EDBX_ERR_METHOD_NOT_ALLOWED: {
    status: 405,
    kind: 'user',
    message: (p) => `${p.method} is not allowed on ${p.url}: use ${p.allowed}`,
    doc: 'The path exists, but not for this HTTP method; the `Allow` header lists the methods it takes.',
  },
  EDBX_ERR_BODY_TOO_LARGE: {
    status: 413,
    kind: 'user',
    message: (p) =>
      `request body is over ${p.limit === undefined ? 'the server limit' : `the limit of ${p.limit} bytes`}: send a smaller body (split a large transaction)`,
    doc: 'The request body exceeds the server body limit.',
  },
  EDBX_ERR_BODY_BUFFER_FULL: {
    status: 503,
    kind: 'user',
    message: (p) =>
      `the server holds as many bytes of request bodies as it takes at once (max_buffered_body_bytes ${p.max}): nothing was done with this request; retry after Retry-After seconds`,
    doc: "The server was already receiving as many bytes of request bodies as it holds at once, all connections together (`max_buffered_body_bytes`, default 64 MiB; the config file's `max_buffered_body_bytes` or `EVENTDBX_MAX_BUFFERED_BODY_BYTES`): the request was refused before anything was done with it (with `Retry-After: 1`), safe to send again. Counted by its Content-Length as it arrives, a chunked body as its chunks arrive; `eventdbx_http_request_body_bytes` shows the bytes held.",
  },
  EDBX_ERR_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    kind: 'user',
    message: (p) => `${p.reason ?? 'send the body as JSON with `Content-Type: application/json`'}`,
    doc: 'The request body is not JSON, is not UTF-8 (charset) or is compressed (Content-Encoding).',
  },
  EDBX_ERR_INVALID_JSON: {
    status: 400,
    kind: 'user',
    message: (p) => `request body is not valid JSON: ${p.reason}`,
    doc: 'The request body could not be parsed as JSON, repeats a key in an object, or nests arrays and objects more than 64 levels deep.',
  },
  EDBX_ERR_REQUEST_TIMEOUT: {
    status: 408,
    kind: 'user',
    message: (p) =>
      `the request did not arrive within ${p.ms === undefined ? 'the server timeout' : `${p.ms} ms`}: send the headers and body without pausing`,
    doc: 'The request headers or body did not arrive within the server timeout.',
  },
  EDBX_ERR_URI_TOO_LONG: {
    status: 414,
    kind: 'user',
    message: (p) =>
      `the URL${p.bytes === undefined ? '' : ` of ${p.bytes} bytes`} is over the limit of ${p.limit} bytes for a request's URL and headers: send a shorter URL (an aggregate id has at most 128 characters, a type 64)`,
    doc: "The URL alone is over the server's limit for the request line and headers (16 KiB): an id or a query far longer than any the API takes.",
  },
  EDBX_ERR_HEADERS_TOO_LARGE: {
    status: 431,
    kind: 'user',
    // `url`: a long URL's size, read with the headers; `unknown`: which of the two crossed the limit.
    message: (p) =>
      p.unknown
        ? `the request's URL and headers are over ${p.limit} bytes together: send fewer or shorter headers, or a shorter URL`
        : `the request headers are over ${p.limit} bytes${p.url === undefined ? '' : ` (counting its URL of ${p.url} bytes)`}: send fewer or shorter headers`,
    doc: 'The request headers, with the URL, exceed the server limit (16 KiB); a URL over it alone is 414 `EDBX_ERR_URI_TOO_LONG`.',
  },
  EDBX_ERR_MALFORMED_REQUEST: {
    status: 400,
    kind: 'user',
    message: (p) => `the request is not valid HTTP/1.1 (${p.reason}): check the client`,
    doc: 'The bytes received are not an HTTP request (bad request line, header or chunked encoding).',
  },
  EDBX_ERR_SHUTTING_DOWN: {
    status: 503,
    kind: 'user',
    message: () => 'the server is shutting down; retry against the restarted server',
    doc: 'The server is stopping and accepts no new writes.',
  },
  EDBX_ERR_CANCELLED: {
    // 499 as nginx logs it: the client closed the request; no one receives this answer.
    status: 499,
    kind: 'user',
    message: () => 'the client went away before the answer: the operation was stopped',
    doc: "A long read (listing, events, state at a version, verification, audit log) was stopped, or not started, because its client closed the connection (or the CLI command was interrupted); nothing was changed. SDK: a call whose `signal` was aborted (`EventDbxCancelledError`, its `cause` the signal's reason); a write aborted after it was sent may still have been applied.",
  },

  EDBX_ERR_INVALID_CHECKPOINT: {
    status: 400,
    kind: 'user',
    message: (p) => `not a signed checkpoint: ${p.reason}`,
    doc: 'The saved checkpoint is not a C2SP signed note as printed by `eventdbx checkpoint`.',
  },
  EDBX_ERR_CHECKPOINT_MISMATCH: {
    status: 409,
    kind: 'user',
    message: (p) => `checkpoint verification failed: ${p.reason}`,
    doc: 'The current history does not extend the saved checkpoint (bad signature, rewritten or truncated history).',
  },

  EDBX_ERR_ALREADY_RUNNING: {
    status: 409,
    kind: 'user',
    message: (p) =>
      `a server is already running for ${p.data_dir} (pid ${p.pid}, port ${p.port}): use \`eventdbx stop\` or \`eventdbx restart\``,
    doc: 'start was asked for a data dir that already has a running server.',
  },
  EDBX_ERR_DATA_DIR_MOVED: {
    status: 409,
    kind: 'user',
    message: (p) => {
      const server = `the server started on it (pid ${p.pid}${p.port === undefined ? '' : `, port ${p.port}`})`;
      // It notices within EVENTDBX_DATA_DIR_CHECK_MS and ends without writing by its old path.
      const notices = `it stops by itself once it notices (it checks every second), writing nothing under ${p.data_dir}: wait for that, or`;
      return p.now === undefined
        ? `no server runs on ${p.data_dir}, but ${server} still runs on its files, which were removed; ${notices} \`kill ${p.pid}\``
        : `no server runs on ${p.data_dir}, but ${server} still runs on its files, now at ${p.now} (the data dir was moved); ${notices} \`eventdbx stop --data-dir ${shellWord(p.now)}\``;
    },
    doc: "`status`, `stop` or `start` found no server at the data dir's path, but the server started on it still runs on its files, moved elsewhere (its PID file moved with them) or removed. A server checks every second (`EVENTDBX_DATA_DIR_CHECK_MS`) that its data dir is still the directory at its path and, once it is not, ends at once without writing anything under that path (also when asked to stop): the writes it acknowledged are in the moved files. Wait for it, or stop it as the message says. The server's own log line carries the same code. Found on Linux, through /proc.",
  },
  EDBX_ERR_RESTART_FAILED: {
    status: 503,
    kind: 'user',
    message: (p) =>
      `the server (pid ${p.pid}) was stopped, but the new one did not start: ${p.reason}; no server runs for ${p.data_dir} now: fix that, then run \`${p.command}\``,
    doc: 'restart stopped the server, then the new one failed to start (the reason, with its own code, is in the message): nothing runs until it is started again.',
  },

  EDBX_ERR_COMMAND_INTERRUPTED: {
    status: 503,
    kind: 'user',
    // `taken: false`: the connection ended before the CLI confirmed the command, which the server runs
    // only once confirmed (control.ts): certainly not run.
    message: (p) =>
      p.taken === false
        ? `the server (PID ${p.pid}) closed the connection before it took the command (${p.reason}): the command was not run; run it again (a server that has used up its open-files limit closes new connections at once: see README "Troubleshooting")`
        : p.applied === false
          ? `the server (PID ${p.pid}) stopped before the command finished (${p.reason}): nothing was changed; run it again once a server is running`
          : `the server (PID ${p.pid}) went away before the command finished (${p.reason}): whether it took effect is unknown; check with \`eventdbx status\` and a read before retrying`,
    doc: 'The connection to the running server ended before it answered a command (the server stopped or was killed); the command may or may not have been applied, and the message says which: one whose connection ended before the server took it (a server out of file descriptors closes new connections at once) was not run.',
  },
  EDBX_ERR_SERVER_NOT_ANSWERING: {
    status: 503,
    kind: 'user',
    message: (p) =>
      p.command === 'running'
        ? `the server at PID ${p.pid} stopped answering (nothing for ${p.seconds} s) while it ran the command: whether it took effect is unknown; check that process (stopped or hung?), and a read, before retrying`
        : p.command === 'health'
          ? `the server at PID ${p.pid} does not answer GET /health (nothing within ${p.seconds} s): it may have max_connections open (eventdbx_http_connections_open, a flood of clients), or be stopped or hung; check that process before ending it with \`eventdbx stop\``
          : `the server at PID ${p.pid} does not answer (nothing within ${p.seconds} s)${p.command === 'not-run' ? ': the command was not run' : ''}; check that process (stopped or hung?), or end it with \`eventdbx stop\``,
    doc: 'The CLI reached the running server but it did not answer in time (the process is stopped, hung or overloaded). A command it had not acknowledged was not run, and never will be; one it was running may or may not have taken effect (the message says which).',
  },

  // --- storage / configuration ---
  EDBX_ERR_STORE_LOCKED: {
    status: 503,
    kind: 'user',
    message: (p) =>
      `data dir ${p.path} is in use by another process (a server that does not answer, or another eventdbx command still running): wait for it, or stop it`,
    doc: 'RocksDB allows one process per data dir; another process has it open.',
  },
  EDBX_ERR_STORE_DAMAGED: {
    status: 500,
    kind: 'user',
    // `read`: met by a read (or write) of a store that opened (a damaged table), not when opening it.
    message: (p) =>
      p.read
        ? `data dir ${p.path} is damaged: ${p.reason}; ${p.fix}`
        : `data dir ${p.path} is damaged: ${p.reason}; nothing in it was changed: ${p.fix}`,
    publicDetail: () =>
      "the server's data dir is damaged: restore a backup (a restart does not help); the server's log names the damaged file",
    doc: 'The database\'s own files are damaged: its `CURRENT` file missing while its tables and manifests remain, RocksDB reporting corruption (a checksum mismatch, a table of the wrong size, a damaged manifest or `CURRENT`) or a table or manifest missing, a restored backup whose database files are not those its `backup.json` lists (a backup copied over another store\'s files, an incomplete copy), when it opens them or later when a read meets a damaged table. A store that does not open is left as it is (RocksDB would otherwise start a new, empty database there and delete the old one\'s files). A restart does not help: restore a backup (README "Backup and restore"), and look into the damaged data dir, or repair it, only on a copy (`cp -a`). A server that meets it on a read logs it at error level and answers `/health` with `status: "degraded"`; `eventdbx aggregate verify` lists each aggregate it could not read.',
  },
  EDBX_ERR_STORE_LAYOUT: {
    status: 500,
    kind: 'user',
    message: (p) => {
      const build = `this build (EventDBX ${p.version}) reads layout ${p.expected} only`;
      const restore = `or restore a backup taken with layout ${p.expected} (backups keep their store's layout)`;
      if (p.found === 'missing')
        return `the data dir holds events but no storage layout marker (an early development build wrote it, or the marker was removed); ${build}: open it with the build that wrote it, ${restore}`;
      if (p.found === 'garbled')
        return `the data dir's storage layout marker is ${s(p.raw)}, not a layout number (damaged); ${build}: restore a backup taken with layout ${p.expected}`;
      if (Number(p.found) > Number(p.expected))
        return `the data dir uses storage layout ${p.found}, newer than this build's: ${build}; open it with the newer build that wrote it (a build that reads layout ${p.found}); downgrades are not supported: to go back, restore the backup taken before the upgrade`;
      return `the data dir uses storage layout ${p.found}, older than this build's: ${build} and has no migration from layout ${p.found}; open it with the build that wrote it (a build that reads layout ${p.found}), ${restore}`;
    },
    doc: 'The data dir was written in another storage layout than this build reads (the `G layout` key; `eventdbx status`, `GET /health` and `backup.json` show it), or its marker is missing or damaged. Nothing was changed. Open it with a build that reads its layout, or restore a backup taken with this build\'s layout; see README "Upgrading".',
  },
  EDBX_ERR_STORE_NOT_OPEN: {
    status: 503,
    kind: 'internal',
    message: () => 'the store is not open',
    doc: 'An operation was attempted on a closed store.',
  },
  EDBX_ERR_DATA_DIR_NOT_WRITABLE: {
    status: 500,
    kind: 'user',
    message: (p) =>
      p.reason === 'EROFS'
        ? `cannot write in the data dir ${p.path} (EROFS: a read-only filesystem): every command opens the store for writing, reads included; remount it read-write, or copy it (\`cp -a\`) to a writable directory and use the copy (--data-dir or EVENTDBX_DATA_DIR)`
        : `cannot write in the data dir ${p.path} (${p.reason}): make it writable by this user (and the disk not full), or choose another with --data-dir`,
    doc: 'The server or a CLI command cannot create or write files in its data dir (read-only mount, permissions, full disk). Every command opens the store for writing, reads included (RocksDB takes a lock file in it): a read-only copy is read by copying it somewhere writable.',
  },
  EDBX_ERR_DATA_DIR_NOT_READABLE: {
    status: 500,
    kind: 'user',
    message: (p) =>
      `cannot read the data dir ${p.path} (${p.reason}): run this command as the user that owns it (the server's user), or choose another with --data-dir`,
    doc: 'The CLI cannot read the data dir (its files are owner-only): it cannot tell whether a server runs there, nor open the store.',
  },
  EDBX_ERR_DATA_DIR_OWNER: {
    status: 500,
    kind: 'user',
    message: (p) =>
      `the data dir ${p.path} belongs to ${p.owner}, and root does not use a directory another account can change (links or a PID file planted there would make root overwrite files or signal processes of that account's choosing): run the command as ${p.user} (\`sudo -u ${shellWord(p.sudo_user)} eventdbx …\`), or make root its owner (\`chown -R root: ${shellWord(p.path)}\`)`,
    doc: "A command run as root on a data dir owned by another account is refused before it reads or writes anything in it: whoever owns the directory could plant links or a PID file there that make root overwrite files or signal processes of its choosing (RocksDB opens its own files by name). Run it as the owner (the server's user), or make root the owner. Another user than root is only warned.",
  },
  EDBX_ERR_NOT_A_DATA_DIR: {
    status: 409,
    kind: 'user',
    message: (p) => {
      const where = 'check --data-dir (or data_dir in the configuration, or EVENTDBX_DATA_DIR)';
      if (p.why === 'not-dir')
        return `${p.path} is not a directory, so not an EventDBX data dir: nothing was removed; ${where}`;
      if (p.why === 'no-store')
        return `${p.path} is not an EventDBX data dir (no store, log or PID file of EventDBX in it; it holds ${listed(p.found)}): destroy removed nothing; ${where}`;
      if (p.why === 'foreign')
        return `${p.path} holds what is not the store's (${listed(p.found)}): destroy removed nothing; move that out of it and destroy again, or remove the directory yourself`;
      return `${p.path} is not empty and holds no EventDBX store (it holds ${listed(p.found)}): a new store is made only in a new or empty directory, never among other files; choose another (--data-dir, data_dir in the configuration, or EVENTDBX_DATA_DIR), or empty it`;
    },
    doc: "`destroy` removes only an EventDBX data dir's own files (RocksDB's, `keyring.json`, `acknowledged-head`, `backup.json`, `eventdbx.log` and its rotated copies, `eventdbx.pid`, `control.sock`, the config file when it is in there), and the directory once empty: it refuses, removing nothing, a directory that holds no store, log or PID file of EventDBX, one that holds anything else (the message names it), or a file. A new store (`start`, or the first command on a data dir) is made only in a new or empty directory: one that holds other files and no store is refused.",
  },
  EDBX_ERR_DESTROY_REFUSED: {
    status: 409,
    kind: 'user',
    message: (p) =>
      `refusing to destroy ${p.path}: it is ${p.what}; ${p.in_cwd ? 'run destroy from outside it (`cd /` first)' : 'a data dir is a directory of its own: check --data-dir (or data_dir in the configuration, or EVENTDBX_DATA_DIR)'}`,
    doc: '`destroy` never removes the root directory, the home directory, or the current directory or a parent of it, whatever they hold: nothing was removed. Run it from outside the data dir.',
  },
  EDBX_ERR_DATA_FILE_ACCESS: {
    status: 500,
    kind: 'user',
    message: (p) =>
      p.own
        ? `cannot ${p.op} ${p.file} (${p.errno}): it belongs to this user, ${p.user}, but its mode ${p.mode} does not let it ${p.op} the file: give the owner access to every file of the data dir (\`chmod -R u+rwX ${shellWord(p.dir)}\`)`
        : `cannot ${p.op} ${p.file} (${p.errno}): it belongs to ${p.owner}, not to ${p.user} who runs this command (files copied in as another user, a restore run as root?): give every file of the data dir to the server's user (\`chown -R ${shellWord(p.chown)}: ${shellWord(p.dir)}\`), or run the command as that user`,
    publicDetail: () =>
      "the server cannot open a file of its data dir (owner or mode); the server's log names it",
    doc: "A file in the data dir (a RocksDB table, manifest or `CURRENT`, or one of EventDBX's own such as `acknowledged-head`) cannot be opened by the user running the command, typically because a restore or a copy made as root left it owned by root. The message names the file and its owner, and says how to give the data dir's files back to the server's user (`chown -R <user>: <data dir>`), or, for a file of this user whose mode shuts it out, `chmod -R u+rwX <data dir>`.",
  },
  EDBX_ERR_FILE_REFUSED: {
    status: 500,
    kind: 'user',
    message: (p) =>
      `refused ${p.path}: it is ${p.what}, where EventDBX keeps a file of its own; it never follows a link, nor writes into anything but a plain file with one name (whoever put it there could make this process write to any file): ${p.what === 'a directory' ? 'move it aside' : `remove it (\`rm ${shellWord(p.path)}\`)`}, find out who put it there, and run the command again`,
    publicDetail: () =>
      "a file the server keeps is not a plain file of its own (a link?); the server's log names it",
    doc: "A file EventDBX keeps by name (in the data dir: `eventdbx.pid`, `eventdbx.log`, `keyring.json`, `acknowledged-head`, `backup.json`, the `.unclean` marker; the config file's temporary file) is a symbolic link, a hard link, a directory, a FIFO or a device: it is never followed or written into, since whoever can write the directory could point it at any file. Remove it (or, a directory, move it aside), find out who put it there, and run the command again.",
  },
  EDBX_ERR_BACKUP_TARGET: {
    status: 409,
    kind: 'user',
    message: (p) => `cannot back up into ${p.path}: ${p.reason}`,
    doc: 'A backup is written only into a new directory or an empty one outside the data dir: it never mixes with or replaces files already there.',
  },
  EDBX_ERR_BACKUP_WRITE: {
    status: 500,
    kind: 'user',
    message: (p) =>
      `cannot write the backup to ${p.path}: ${p.cause}; ${p.fix}; the store is not affected, and nothing was left at ${p.path}`,
    doc: "A backup could not be written at its target (no space left on the device, a quota, a read-only or failing disk, permissions). It concerns the target only: the store, its writes and `/health` are not affected (unlike `EDBX_ERR_STORE_IO`, which means the store itself failed), and the backup's temporary directory is removed. Free space there, or name another target, and back up again.",
  },
  EDBX_ERR_BACKUP_IN_PLACE: {
    status: 409,
    kind: 'user',
    message: (p) =>
      `${p.path} is the backup taken at ${p.taken_at} itself, not a copy of it: a server started on it makes it the live store, and the backup is gone; copy it to the data dir (\`cp -a ${shellWord(p.path)} <data dir>\`) and start on the copy, or start with --consume-backup to use this directory as the store`,
    doc: "`start` was pointed at a backup's own directory (the path its `backup.json` records): the server would turn the backup into the live store. Copy the backup (`cp -a`) to the data dir and start there, or pass `--consume-backup` to use the backup directory itself. Nothing was changed.",
  },
  EDBX_ERR_BACKUP_CHECK_FAILED: {
    status: 500,
    kind: 'internal',
    message: (p) =>
      `the backup copy does not match the store (${p.reason}); it was removed: run the backup again`,
    doc: 'The copy a backup wrote, opened again, does not hold what the store held at the backup point (entries or ledger); nothing was left at the target.',
  },
  EDBX_ERR_BACKUP_NOT_RECORDED: {
    status: 409,
    kind: 'user',
    message: (p) =>
      // The cause's code in words, not in brackets: the line ends with this error's code alone.
      `cannot back up: every backup is recorded in the audit log, and this store cannot append to it (cause ${p.cause}): ${p.reason}; nothing was left at ${p.path}: put that right, then back up again`,
    doc: 'A backup is a copy of everything, so each one is recorded in the audit log (`backup-taken`); a store that refuses writes, or whose audit log was cut short, cannot record it, and no backup is left at the target.',
  },
  EDBX_ERR_STORE_IO: {
    status: 500,
    kind: 'user',
    // `refused`: a write after one that failed (the store cannot tell what the failed one left on disk).
    message: (p) =>
      p.refused
        ? `storage error: an earlier write failed (${p.reason}); ${WRITES_REFUSED}`
        : `storage error: ${p.reason}`,
    publicDetail: (p) =>
      p.refused
        ? `storage error: an earlier write failed; ${WRITES_REFUSED}; the server's log has the cause`
        : "storage error on the server; the server's log has the cause",
    doc: "The storage engine reported an I/O error on the store itself (disk full, a file over its size limit, a failing disk); damaged files are `EDBX_ERR_STORE_DAMAGED`, and a backup target that cannot be written `EDBX_ERR_BACKUP_WRITE`. After a failed write, every write is refused until the server is restarted (`eventdbx restart`). HTTP clients get this code with a generic detail; the server's log and the CLI show the engine's own message, with the file it names.",
  },
  EDBX_ERR_ACKNOWLEDGED_HEAD: {
    status: 500,
    kind: 'user',
    message: (p) =>
      `cannot write ${p.path} (${p.reason}): until it is written again, events acknowledged from now on are not covered by the check that finds a damaged or cut write-ahead log at the next start; writes go on (they are durable in the store): make the file writable by the server's user (and the disk not full), it is tried again every ${p.retry} s`,
    publicDetail: () =>
      "the server cannot write its acknowledged-head file: the check for acknowledged events lost from the write-ahead log does not cover new writes until it can; the server's log has the cause",
    doc: 'The `acknowledged-head` file (README "A write-ahead log damaged or cut short") could not be written: permissions, a full disk, a failing disk. Writes go on, since each acknowledged write is durable in RocksDB already; but until the file is written again, a later loss of the events acknowledged meanwhile (a damaged or cut write-ahead log) would not be noticed at the next start. The server logs it at error level once, answers `/health` with `status: "degraded"` and this code, sets `eventdbx_acknowledged_head_ok` to 0, and tries again every 2 s; once the file is written it logs that and everything is covered again.',
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
    message: () =>
      'the first configuration needs both keys: --master-key and --dek, or EVENTDBX_MASTER_KEY and EVENTDBX_DEK in the environment',
    doc: 'The first `config` call must set both keys (as flags, or in the environment so they stay out of the file).',
  },
  EDBX_ERR_CONFIG_KEYS_NOT_SET: {
    status: 400,
    kind: 'user',
    message: (p) =>
      `no ${p.missing} set: ${p.path} ${p.absent ? 'does not exist' : 'does not hold it'}, so set ${p.env} in the environment (or store it with \`eventdbx config ${p.flag} <secret>\`${p.absent ? ', or name the configuration with --config' : ''})`,
    doc: 'The config file holds no master key or DEK (they are kept in the environment) and the environment does not set them either.',
  },
  EDBX_ERR_CONFIG_INVALID: {
    status: 400,
    kind: 'user',
    message: (p) => `configuration ${p.path} is invalid: ${p.reason}`,
    doc: 'The configuration file is not valid JSON or has a bad value, or an `EVENTDBX_*` environment variable has one (a number that is not a whole number in its range, such as `30s` for a number of milliseconds); the message names the variable and what it takes.',
  },
  EDBX_ERR_CONFIG_WRITE: {
    status: 500,
    kind: 'user',
    message: (p) =>
      p.applied === undefined
        ? `cannot write the configuration ${p.path} (${p.reason}): make the file and its directory writable (and the disk not full), then run the command again`
        : `cannot write the configuration ${p.path} (${p.reason}), but the store already uses the new ${p.applied} and the file still holds the old one: start with ${p.env} set to the new ${p.applied}, or once the file is writable run \`${p.rerun}\` to record it`,
    doc: '`config` could not write the configuration file (nothing is left behind: its temporary file is removed). The new file is written whole before a change touches the store or the audit log (a full disk changes nothing); if its rename still fails after the store took a new key, the message says how to go on (the new key in the environment, then `config` again).',
  },
  EDBX_ERR_NOT_SUPPORTED: {
    status: 501,
    kind: 'user',
    message: (p) => `${p.feature} is not supported by the ${p.engine} engine`,
    doc: 'The storage engine lacks a feature.',
  },
  EDBX_ERR_TOO_MANY_OPEN_FILES: {
    status: 503,
    kind: 'user',
    message: tooManyOpenFiles,
    publicDetail: (p) =>
      p.errno === 'ENFILE'
        ? "the server's system has too many files open; the server's log has the cause"
        : "the server has used up its open-files limit; the server's log has the cause",
    doc: 'A process ran out of file descriptors: its open-files limit (`ulimit -n`; `LimitNOFILE=` in a systemd unit) is too low for what it has open (EMFILE), or, with ENFILE, the whole system\'s table of open files is full (`fs.file-max`). The message gives the limit and what to raise it to. A server also refuses to start with this code when its limit leaves fewer than 16 connections once its store, plugins and commands have their descriptors (README "Configuration", `max_connections`). Raise the limit and run the command again.',
  },
  EDBX_ERR_INTERNAL: {
    status: 500,
    kind: 'internal',
    message: (p) => `internal error: ${p.reason ?? 'unexpected failure'}`,
    // The reason of an unexpected failure is whatever was thrown: it may name the server's files.
    publicDetail: () => "internal error on the server; the server's log has the cause",
    doc: "An unexpected failure; please report it. HTTP clients get this code with a generic detail; the server's log has the error and its stack.",
  },

  // --- schemas (schema commands, /v1/schemas, and validation of appends in restricted mode) ---
  EDBX_ERR_SCHEMA_NOT_FOUND: {
    status: 404,
    kind: 'user',
    message: (p) =>
      `aggregate ${s(p.aggregate)} has no schema: create one with \`eventdbx schema create --aggregate ${p.aggregate} --events <e1,e2,...>\``,
    doc: 'The aggregate type has no schema.',
  },
  EDBX_ERR_SCHEMA_EXISTS: {
    status: 409,
    kind: 'user',
    message: (p) =>
      `aggregate ${s(p.aggregate)} already has a schema (version ${p.version}): change it with \`schema add\` or \`schema alter\``,
    doc: '`schema create` was asked for an aggregate type that already has a schema.',
  },
  EDBX_ERR_SCHEMA_EVENT_EXISTS: {
    status: 409,
    kind: 'user',
    message: (p) => `the schema of aggregate ${s(p.aggregate)} already declares event ${s(p.event)}`,
    doc: '`schema add` was given an event the schema already declares.',
  },
  EDBX_ERR_SCHEMA_EVENT_NOT_FOUND: {
    status: 404,
    kind: 'user',
    message: (p) =>
      `the schema of aggregate ${s(p.aggregate)} declares no event ${s(p.event)} (declared: ${p.declared})`,
    doc: '`schema alter --event` or `schema remove` named an event the schema does not declare.',
  },
  EDBX_ERR_SCHEMA_LAST_EVENT: {
    status: 409,
    kind: 'user',
    message: (p) =>
      `event ${s(p.event)} is the last event of the schema of aggregate ${s(p.aggregate)}: a schema needs at least one event (lock the aggregate with \`schema alter ${p.aggregate} --lock true\` to stop all appends)`,
    doc: '`schema remove` would leave the schema without events.',
  },
  EDBX_ERR_SCHEMA_FIELD_EXISTS: {
    status: 409,
    kind: 'user',
    message: (p) => `event ${s(p.event)} of aggregate ${s(p.aggregate)} already declares field ${s(p.field)}`,
    doc: 'Not raised since 1.1.0 (adding a field the event already declares changes nothing); kept so the code is never reused.',
  },
  EDBX_ERR_SCHEMA_FIELD_NOT_FOUND: {
    status: 404,
    kind: 'user',
    message: (p) =>
      `event ${s(p.event)} of aggregate ${s(p.aggregate)} declares no field ${s(p.field)} (declared: ${p.declared})`,
    doc: '`schema alter --remove` named a field the event does not declare.',
  },
  EDBX_ERR_SCHEMA_LAST_FIELD: {
    status: 409,
    kind: 'user',
    message: (p) =>
      `removing ${p.fields} would leave event ${s(p.event)} of aggregate ${s(p.aggregate)} without declared fields, which accepts any field: add the fields to keep first, or remove the event and add it again to accept any field`,
    doc: '`schema alter --remove` would remove every declared field of an event (an event without declared fields accepts any field).',
  },
  EDBX_ERR_INVALID_SNAPSHOT_THRESHOLD: {
    status: 400,
    kind: 'user',
    message: (p) =>
      `invalid snapshot threshold ${s(p.value)}: use a whole number of events from 0 to ${Number.MAX_SAFE_INTEGER} (0 = no automatic snapshots)`,
    doc: 'A snapshot threshold is not a whole number from 0 to 2^53−1.',
  },
  EDBX_ERR_SCHEMA_REQUIRED: {
    status: 422,
    kind: 'user',
    message: (p) =>
      `aggregate ${s(p.aggregate)} has no schema and the server runs with --restrict=strict: event ${s(p.event)} refused (create a schema with \`eventdbx schema create\`)`,
    doc: 'In strict mode, appends to aggregate types without a schema are refused; nothing was written.',
  },
  EDBX_ERR_EVENT_NOT_IN_SCHEMA: {
    status: 422,
    kind: 'user',
    message: (p) =>
      `aggregate ${s(p.aggregate)} does not accept event ${s(p.event)}: its schema declares ${p.declared} (add it with \`eventdbx schema add\`)`,
    doc: 'The event type is not declared in the schema of the aggregate type; nothing was written.',
  },
  EDBX_ERR_FIELD_NOT_PERMITTED: {
    status: 422,
    kind: 'user',
    message: (p) =>
      `event ${s(p.event)} of aggregate ${s(p.aggregate)} may not set field ${s(p.field)}: permitted fields are ${p.permitted}`,
    doc: 'The payload has a field the event does not declare; nothing was written.',
  },
  EDBX_ERR_AGGREGATE_LOCKED: {
    status: 403,
    kind: 'user',
    message: (p) =>
      `aggregate ${s(p.aggregate)} is locked by its schema: event ${s(p.event)} refused (unlock with \`eventdbx schema alter ${p.aggregate} --lock false\`)`,
    doc: 'The schema locks the whole aggregate type: no event may be appended; nothing was written.',
  },
  EDBX_ERR_FIELD_LOCKED: {
    status: 403,
    kind: 'user',
    message: (p) =>
      `field ${s(p.field)} of aggregate ${s(p.aggregate)} is locked: event ${s(p.event)} may not set it (unlock with \`eventdbx schema alter ${p.aggregate} --field ${p.field} --lock false\`)`,
    doc: 'The schema locks a field: no event may set it; nothing was written.',
  },

  // --- plugins (plugin commands, /v1/plugins, and delivery failures recorded as last errors / dead letters) ---
  EDBX_ERR_PLUGIN_UNKNOWN: {
    status: 400,
    kind: 'user',
    message: (p) => `unknown plugin ${s(p.name)}: use one of postgres, sqlite, csv, tcp, http, json, log`,
    doc: 'A plugin command or endpoint named a plugin kind that does not exist.',
  },
  EDBX_ERR_PLUGIN_NOT_FOUND: {
    status: 404,
    kind: 'user',
    message: (p) =>
      `plugin ${s(p.name)} is not configured: add it with \`eventdbx plugin ${p.name} …\` (see \`eventdbx plugin list\`)`,
    doc: 'The plugin has never been configured (or was removed).',
  },
  EDBX_ERR_PLUGIN_CONFIG_INVALID: {
    status: 400,
    kind: 'user',
    message: (p) => `plugin ${p.plugin}: ${p.reason}`,
    doc: 'A plugin setting is missing or malformed (connection, path, host/port, endpoint, header, level, retry options).',
  },
  EDBX_ERR_PLUGIN_DATATYPE_INVALID: {
    status: 400,
    kind: 'user',
    message: (p) => `unknown datatype ${s(p.value)}: use one of ${p.allowed}`,
    doc: '`plugin map --datatype` was given a type the SQL plugins do not know.',
  },
  EDBX_ERR_PLUGIN_CAST: {
    status: 422,
    kind: 'user',
    // Never the value: this message goes to the server log (plaintext, often shipped elsewhere) and
    // is shown as the dead letter's reason to anyone who administers plugins.
    message: (p) =>
      `field ${s(p.field)} of ${p.aggregate_type}/${p.aggregate_id} v${p.version} is not a valid ${p.datatype} (mapped with \`plugin map\`); values are not logged: see it with ${seeEvent(p)}, fix the mapping, then \`eventdbx plugin retry ${p.plugin}\``,
    doc: 'A field value cannot be cast to the column type mapped for it; the event is dead-lettered (retrying cannot help until the mapping changes). The message names the field, event and type, never the value.',
  },
  EDBX_ERR_PLUGIN_REJECTED: {
    status: 422,
    kind: 'user',
    message: (p) =>
      `${p.plugin} refused ${p.aggregate_type}/${p.aggregate_id} v${p.version}: ${p.reason}; values are not logged: see them with ${seeEvent(p)}`,
    doc: "The destination refused the data itself (a constraint or data error); the event is dead-lettered. The reason is the destination's error code and the objects it names, never a value.",
  },
  EDBX_ERR_PLUGIN_DELIVERY: {
    status: 502,
    kind: 'user',
    message: (p) => `${p.plugin} delivery failed: ${p.reason}`,
    doc: 'The destination answered with an error (or a file or SQLite write failed); delivery is retried with exponential backoff, then, after --max-attempts, dead-lettered (or blocks).',
  },
  EDBX_ERR_PLUGIN_UNREACHABLE: {
    status: 503,
    kind: 'user',
    message: (p) =>
      `${p.plugin} cannot reach its destination: ${p.reason}; delivery resumes once it is reachable (check that it runs)`,
    doc: "The destination could not be reached (connection refused, reset or timed out, a name that does not resolve, a database starting up or shutting down, HTTP 429, 502, 503 or 504), or did not answer within --timeout (a PostgreSQL statement cancelled, a SQLite or file write still unfinished: a hung disk or network file system; nothing more is written to it until that write ends). Nothing is wrong with the events: this counts toward no event's --max-attempts, and delivery is retried with backoff (at most --backoff-max apart) until the destination is back; nothing is dead-lettered.",
  },
  EDBX_ERR_PLUGIN_DIVERGED: {
    status: 409,
    kind: 'user',
    message: (p) =>
      `${p.plugin} destination ${p.target} holds ${p.held}, which this store does not have (${p.why}): the store was restored from a backup, or the destination is shared with another store; nothing is delivered until you rebuild it with \`eventdbx plugin replay ${p.plugin} --rebuild\``,
    doc: "A destination (postgres, sqlite, json, csv) holds an event this store does not have: one beyond its last position, or one that differs from the store's event at that position. The store was restored from a backup taken before that event, or another store writes to the same destination. The plugin delivers nothing and dead-letters nothing (its status shows `failed`) until `eventdbx plugin replay <name> --rebuild` clears the destination and delivers everything again; `plugin retry` (which compares the destination again) and a replay without `--rebuild` are refused with this error.",
  },

  // --- client SDK (raised by src/client itself, never sent by a server) ---
  EDBX_ERR_CONNECTION: {
    status: 503,
    kind: 'user',
    message: (p) => `cannot reach the server: ${p.reason}`,
    doc: "SDK: the server could not be reached, timed out, or it (or a proxy in front of it) answered 502, 503 or 504 without a problem document (idempotent requests were retried first). When attempts of a write were sent and got no answer (a dropped connection, a timeout, a 502 or 504), the error's `unanswered` counts them and the message says the write may have been applied: with `event_id`s, send it again to learn the outcome (HTTP 200, `duplicate: true`, if it was). A connection that was refused on every attempt sent nothing: `unanswered` is 0.",
  },
  EDBX_ERR_UNEXPECTED_RESPONSE: {
    status: 502,
    kind: 'internal',
    message: (p) => `unexpected response from the server: ${p.reason}`,
    doc: 'SDK: the server answered something the API does not define (not JSON, no problem document, a 2xx body without a field of its type).',
  },
  EDBX_ERR_CLIENT_CONFIG: {
    status: 400,
    kind: 'usage',
    message: (p) => `client configuration: ${p.reason}`,
    doc: 'SDK: a client option is unusable (bad URL, a `timeoutMs`, `idleTimeoutMs` or `retry` value out of range, a `publicKey` that is not an Ed25519 public key in PEM, no trusted-checkpoint store, no pinned key), or an argument (a version below 1, an id with a lone surrogate, a payload that is not JSON, a payload number that is NaN, infinite, or an integer beyond ±(2^53−1), which JavaScript cannot hold exactly: send such values as strings).',
  },
  EDBX_ERR_PROOF_INVALID: {
    status: 409,
    kind: 'user',
    message: (p) => `proof does not verify: ${p.reason}`,
    doc: 'SDK: an event, its inclusion proof or a consistency proof does not verify against the root.',
  },
  EDBX_ERR_CHECKPOINT_SIGNATURE: {
    status: 409,
    kind: 'user',
    message: (p) => `checkpoint signature does not verify: ${p.reason}`,
    doc: 'SDK: a checkpoint is not signed by the pinned Ed25519 key (or the server advertises another key).',
  },
  EDBX_ERR_TRUST_STORE: {
    status: 500,
    kind: 'user',
    message: (p) => `trusted checkpoint store: ${p.reason}`,
    doc: 'SDK: the trusted-checkpoint store cannot be read or written, or what it holds does not verify.',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/**
 * Per code, the extension members its problem document always carries (what its `members` returns),
 * for the codes that have any: the one list the wire type `Problem` and the SDK's `isApiError`
 * narrowing (`ProblemOf<C>`) are derived from.
 */
export type ProblemMembersByCode = {
  readonly [C in ErrorCode as (typeof ERRORS)[C] extends { readonly members: unknown } ? C : never]: Readonly<
    ReturnType<Extract<(typeof ERRORS)[C], { readonly members: unknown }>['members']>
  >;
};

/**
 * The event of a transaction (`POST /v1/transactions`, the SDK's `transaction`) an error is about: its
 * index in `events`, and its aggregate when both names are valid. The problem carries it as `event`,
 * and the message starts with it (`events[1] (patient/p-031): …`), so a refused transaction of many
 * events says which one to fix.
 */
export interface EventRef {
  readonly index: number;
  readonly aggregate_type?: string;
  readonly aggregate_id?: string;
}

const eventPrefix = (at: EventRef | undefined): string =>
  at === undefined
    ? ''
    : `events[${at.index}]${at.aggregate_type === undefined ? '' : ` (${at.aggregate_type}/${at.aggregate_id})`}: `;

/** The one error class. `params` are safe to show to the user: never put secrets in them. */
export class EventDbxError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly params: Record<string, unknown>;
  /** The event of a transaction it is about (see EventRef). */
  readonly event?: EventRef;

  constructor(
    code: ErrorCode,
    params: Record<string, unknown> = {},
    options?: { cause?: unknown; event?: EventRef },
  ) {
    const spec: ErrorSpec = ERRORS[code];
    const event = options?.event;
    super(
      eventPrefix(event) + spec.message(params),
      options && 'cause' in options ? { cause: options.cause } : undefined,
    );
    this.name = 'EventDbxError';
    this.code = code;
    this.status = spec.status;
    this.params = params;
    if (event) this.event = event;
  }

  get kind(): ErrorKind {
    return (ERRORS[this.code] as ErrorSpec).kind;
  }
}

export const err = (code: ErrorCode, params: Record<string, unknown> = {}, cause?: unknown): EventDbxError =>
  new EventDbxError(code, params, cause === undefined ? undefined : { cause });

/**
 * An error's detail as an HTTP client sees it: its message, or the generic text of a code whose message
 * may name the server's files (ErrorSpec.publicDetail).
 */
export function publicDetail(e: EventDbxError): string {
  const spec: ErrorSpec = ERRORS[e.code];
  return spec.publicDetail ? eventPrefix(e.event) + spec.publicDetail(e.params) : e.message;
}

/** The extension members of the problem document of `e` (ErrorSpec.members), if its code has any. */
export function problemMembers(e: EventDbxError): Record<string, unknown> {
  const spec: ErrorSpec = ERRORS[e.code];
  return spec.members ? spec.members(e.params) : {};
}

/**
 * `e` about the event `at` of a transaction: the same code and parameters, its message starting with
 * the event. A server's failure (5xx: storage, integrity) is not the event's to fix: returned as it is.
 */
export function atEvent(e: unknown, at: EventRef): unknown {
  if (!(e instanceof EventDbxError) || e.status >= 500 || e.event !== undefined) return e;
  return new EventDbxError(e.code, e.params, {
    ...(e.cause === undefined ? {} : { cause: e.cause }),
    event: at,
  });
}

export const isEventDbxError = (e: unknown, code?: ErrorCode): e is EventDbxError =>
  e instanceof EventDbxError && (code === undefined || e.code === code);

/**
 * This process's open-files limit (the soft RLIMIT_NOFILE), once the edge that read it said
 * (fs/open-files-limit.ts): an error for descriptors run out quotes it. Read at start, while a
 * descriptor is still free to read it with.
 */
let openFilesLimit: number | undefined;

/** Tell the registry this process's open-files limit (undefined: unknown or unlimited). */
export function noteOpenFilesLimit(limit: number | undefined): void {
  openFilesLimit = limit;
}

/** This process's open-files limit as noted (noteOpenFilesLimit); undefined when unknown. */
export const notedOpenFilesLimit = (): number | undefined => openFilesLimit;

/**
 * EDBX_ERR_TOO_MANY_OPEN_FILES for a process out of descriptors, with its limit: `errno` EMFILE (its
 * own limit) or ENFILE (the system's table is full).
 */
export const outOfDescriptors = (
  errno: 'EMFILE' | 'ENFILE',
  reason: string,
  cause?: unknown,
): EventDbxError => err('EDBX_ERR_TOO_MANY_OPEN_FILES', { errno, reason, limit: openFilesLimit }, cause);

/**
 * Wrap anything thrown into a registry error: a process out of file descriptors (EMFILE, ENFILE:
 * from any file or socket it opens, a module it loads included) is EDBX_ERR_TOO_MANY_OPEN_FILES,
 * anything else unknown EDBX_ERR_INTERNAL.
 */
export function toEventDbxError(e: unknown): EventDbxError {
  if (e instanceof EventDbxError) return e;
  const reason = e instanceof Error ? e.message : String(e);
  const errno = (e as { code?: unknown } | null)?.code;
  if (errno === 'EMFILE' || errno === 'ENFILE') return outOfDescriptors(errno, reason, e);
  return err('EDBX_ERR_INTERNAL', { reason }, e);
}

/** CLI exit codes: 0 ok, 1 user error, 2 usage error. Internal errors are also 1 (with the code shown). */
export function exitCodeFor(e: EventDbxError): 1 | 2 {
  return e.kind === 'usage' ? 2 : 1;
}

/**
 * Stop a long read whose caller gave up, between two chunks of its work: throws the signal's reason
 * when it is a coded error (a stopping server aborts with EDBX_ERR_SHUTTING_DOWN), else
 * EDBX_ERR_CANCELLED. Writes never take a signal: a write commits whole or not at all.
 */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (!signal?.aborted) return;
  throw isEventDbxError(signal.reason) ? signal.reason : err('EDBX_ERR_CANCELLED');
}
