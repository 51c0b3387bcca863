/**
 * Schemas and tokens live outside the event trees; the audit log (a Merkle-verified aggregate) records
 * every change to them. So the stored records must be exactly what the log says they became: a
 * schema rolled back to an earlier version, a revocation undone, a token or schema slipped in or
 * removed — with write access to the data dir but not the keys — shows up here.
 *
 * Checked: each schema's current version against the last version the log recorded for it; each
 * token's existence and revocation against its generation and revocation entries. Not checked: a
 * token's remaining writes and sliding expiry, which change with use and are not logged per use.
 */
import type { EventRecord } from '../core/event.js';
import type { EventStore } from './store.js';
import { listSchemas } from './schemas.js';

export interface AuditStateReport {
  readonly ok: boolean;
  /** One line per disagreement, naming the record and what the log says. */
  readonly problems: string[];
}

export async function verifyAuditState(
  store: EventStore,
  log: readonly EventRecord[],
): Promise<AuditStateReport> {
  const problems: string[] = [];
  const schemaVersions = new Map<string, number>();
  const generated = new Set<string>();
  const revoked = new Set<string>();
  for (const e of log) {
    const p = e.payload;
    if (e.event_type.startsWith('schema-') && p.aggregate && p.schema_version)
      schemaVersions.set(p.aggregate, Number(p.schema_version));
    else if (e.event_type === 'token-generated' && p.token) generated.add(p.token);
    else if (e.event_type === 'token-revoked' && p.token) revoked.add(p.token);
  }

  const stored = new Map((await listSchemas(store)).map((s) => [s.aggregate, s.version]));
  for (const [aggregate, version] of schemaVersions) {
    const now = stored.get(aggregate);
    if (now === undefined)
      problems.push(`schema ${aggregate}: missing, the audit log records version ${version}`);
    else if (now !== version)
      problems.push(`schema ${aggregate}: stored version ${now}, the audit log records version ${version}`);
  }
  for (const [aggregate, version] of stored)
    if (!schemaVersions.has(aggregate))
      problems.push(`schema ${aggregate}: version ${version} is stored but the audit log never recorded it`);

  const tokens = new Map([...store.tokens.values()].map((t) => [t.id, t]));
  for (const id of generated) {
    const t = tokens.get(id);
    if (!t) problems.push(`token ${id}: missing, the audit log records its generation`);
    else if (revoked.has(id) && t.revoked_at === null)
      problems.push(`token ${id}: active, the audit log records its revocation`);
    else if (!revoked.has(id) && t.revoked_at !== null)
      problems.push(`token ${id}: revoked, the audit log records no revocation`);
  }
  for (const id of tokens.keys())
    if (!generated.has(id))
      problems.push(`token ${id}: stored but the audit log never recorded its generation`);

  return { ok: problems.length === 0, problems };
}
