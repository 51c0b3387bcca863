/**
 * What the audit log (`$audit/log`, served by `GET /v1/audit`) records: each entry is an EventRecord
 * whose `event_type` is the action, `metadata.issued_by` who did it and `metadata.created_at` when, and
 * whose payload holds the action's details (strings, like every payload).
 */

/**
 * The actions the audit log records, as an entry's `event_type`. A later server may record more, so a
 * reader keeps `event_type` a string and treats an action it does not know as one it cannot interpret.
 */
export type AuditAction =
  | 'token-generated'
  | 'token-revoked'
  | 'token-refreshed'
  | 'schema-created'
  | 'schema-events-added'
  | 'schema-altered'
  | 'schema-event-removed'
  | 'snapshot-threshold-set'
  | 'aggregate-snapshot-taken'
  | 'aggregate-archived'
  | 'aggregate-restored'
  | 'config-changed'
  | 'plugin-configured'
  | 'plugin-disabled'
  | 'plugin-mapped'
  | 'plugin-replayed'
  | 'plugin-retried'
  | 'plugin-removed'
  | 'backup-taken'
  | 'store-restored'
  | 'server-started'
  | 'command-run';

/**
 * The payload of a `backup-taken` entry: a backup (`eventdbx backup`) was written, complete, at `path`.
 * Its `issued_by` is whoever ran it (the operator's `local/<os user>`). Written after the backup was in
 * place, so the backup itself never holds its own entry: it holds the store as of `taken_at`.
 *
 * @example
 * { path: '/backups/eventdbx-2026-11-30', taken_at: '2026-11-30T02:00:00.123Z', events: '1200',
 *   ledger_root: 'ab12…' }
 */
export interface BackupTakenPayload {
  /** Where the backup was written (an absolute path on the server's host). */
  readonly path: string;
  /** When its point in time was pinned (ISO 8601): its `backup.json` says the same. */
  readonly taken_at: string;
  /** Events in the backup (the ledger size at that point), as a decimal string. */
  readonly events: string;
  /** The ledger root at that point (hex). */
  readonly ledger_root: string;
}

/**
 * The payload of a `store-restored` entry, written by the first server started on a restored backup
 * while the backup's `backup.json` is still there. Advisory: a plain copy of an old data dir carries no
 * `backup.json` and records nothing; only a signed checkpoint saved outside the store proves a rollback.
 */
export interface StoreRestoredPayload {
  readonly backup_taken_at: string;
  readonly backup_events: string;
  readonly backup_ledger_root: string;
}

/**
 * The payload of a `server-started` entry, written (before it listens) by a server started in a
 * restriction mode other than `true`, or other than the configured one: a window in which the schemas
 * applied otherwise (`false`: not at all, locked fields included). Its `issued_by` is the OS user
 * that started it (`local/<user>`). A start in the configured mode `true` records nothing. Written
 * before the server listens: a start that then fails to listen (its port taken) leaves one too.
 *
 * @example
 * { restrict: 'false', source: '--restrict', configured: 'true' }
 */
export interface ServerStartedPayload {
  /** The mode the server ran in: `true`, `strict` or `false`. */
  readonly restrict: string;
  /** Where that came from: `--restrict`, `environment EVENTDBX_RESTRICT` or `configuration`. */
  readonly source: string;
  /** The configuration file's mode (`config --restrict`), `true` when it sets none. */
  readonly configured: string;
}

/**
 * The payload of a `command-run` entry: a CLI command that writes events (`aggregate apply`,
 * `aggregate commit`) opened the store itself (no server ran) in a restriction mode other than `true`,
 * or other than the configured one, as a server's start records a `server-started` entry. Its
 * `issued_by` is the OS user who ran it (`local/<user>`); written before the command writes.
 *
 * @example
 * { command: 'aggregate apply', restrict: 'false', source: 'environment EVENTDBX_RESTRICT', configured: 'true' }
 */
export interface CommandRunPayload extends ServerStartedPayload {
  /** The command: `aggregate apply` or `aggregate commit`. */
  readonly command: string;
}
