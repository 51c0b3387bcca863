/** Human-readable rendering of operation results (the --json output is the result itself). */
import type { EventRecord } from '../core/event.js';
import type { describeToken } from '../core/tokens.js';
import type { BackupReport } from '../store/backup.js';
import type { VerifyAllReport } from '../store/verify.js';
import type {
  AggregateSummary,
  AggregateView,
  SnapshotRecord,
  StagedEvent,
  VerifyReport,
} from '../store/types.js';
import { PLUGIN_HUMAN } from './ops/plugin.js';
import { SCHEMA_HUMAN, schemaRow } from './ops/schema.js';
import type { Renderer } from './ops/types.js';
import { type ListPrinter, lineList, tableList } from './list-output.js';
import type { AuditStateReport } from '../store/audit-state.js';
import { bold, count, formatEvent, green, issuerLabel, keyValues, printable, red, table } from './output.js';

type TokenView = ReturnType<typeof describeToken>;

/** The row of a token in `token list`. */
const tokenRow = (t: TokenView) => ({
  id: t.id,
  group: t.group,
  user: t.user,
  status: t.status,
  expires_at: t.expires_at ?? 'never',
  remaining: t.remaining ?? 'unlimited',
  access: `${t.read_only ? 'read-only' : 'read-write'}${t.scopes.length ? ` ${t.scopes.join(',')}` : ''}${t.audit ? ' +audit' : ''}`,
});

const verifyLine = (r: VerifyReport): string =>
  r.ok
    ? `${green('ok')}   ${r.aggregate_type}/${r.aggregate_id} version ${r.version} root ${r.merkle_root}`
    : `${red('FAIL')} ${r.aggregate_type}/${r.aggregate_id}: ${r.first_bad_version === undefined ? '' : `version ${r.first_bad_version}: `}${r.reason}`;

/** Human output of the listings (LISTINGS in ops.ts), printed a page at a time. */
export const HUMAN_LISTS: Record<string, () => ListPrinter> = {
  'aggregate.list': () =>
    tableList((a: AggregateSummary) => ({
      aggregate: `${a.aggregate_type}/${a.aggregate_id}`,
      version: a.version,
      merkle_root: a.merkle_root,
      status: a.archived ? 'archived' : 'live',
    })),
  'aggregate.replay': () => lineList(formatEvent, '(no events)'),
  'token.list': () => tableList(tokenRow),
  'schema.list': () => tableList(schemaRow),
};

export const HUMAN: Record<string, Renderer> = {
  'aggregate.apply': (r) => {
    if (r.staged) {
      const s = r.staged as StagedEvent;
      const what = `${s.request.event_type} on ${s.request.aggregate_type}/${s.request.aggregate_id}`;
      if (r.duplicate)
        return `already staged: event id ${printable(s.request.event_id)} is staged #${s.seq} ${what}; nothing staged again (run \`eventdbx aggregate commit\` to append)`;
      return `staged #${s.seq} ${what} (run \`eventdbx aggregate commit\` to append)`;
    }
    const e = r.event as EventRecord;
    // `--stage` of an event already appended: `staged` is null, nothing was staged.
    if (r.duplicate)
      return `already appended: event id ${printable(e.metadata.event_id)} is ${e.event_type} on ${e.aggregate_type}/${e.aggregate_id} at version ${e.version} (position ${e.position}); nothing ${r.staged === null ? 'staged' : 'written'}\nmerkle_root ${e.merkle_root}`;
    return `appended ${e.event_type} to ${e.aggregate_type}/${e.aggregate_id} at version ${e.version} (position ${e.position})\nmerkle_root ${e.merkle_root}`;
  },
  'aggregate.get': (r) => {
    const a = r.aggregate as AggregateView;
    const head = keyValues({
      aggregate: `${a.aggregate_type}/${a.aggregate_id}`,
      version: a.version,
      merkle_root: a.merkle_root,
      status: a.archived ? 'archived' : 'live',
      updated_at: a.updated_at,
    });
    const state = Object.keys(a.state).length ? keyValues(a.state) : '(empty)';
    const events = a.events ? `\n\n${bold('events')}\n${a.events.map(formatEvent).join('\n')}` : '';
    return `${head}\n\n${bold('state')}\n${state}${events}`;
  },
  'aggregate.verify': (r) => {
    if (r.report) return verifyLine(r.report as VerifyReport);
    const all = r.all as VerifyAllReport;
    const lines = all.failures.map(verifyLine);
    for (const range of all.unreadable ?? []) lines.push(`${red('FAIL')} ${range}`);
    lines.push(
      all.ledger.ok
        ? `${green('ok')}   ledger: ${count(all.ledger.size, 'event')}, root ${all.ledger.root}`
        : `${red('FAIL')} ledger: position ${all.ledger.first_bad_position}: ${all.ledger.reason}`,
    );
    lines.push(
      `${all.ok ? green('verified') : red('verification failed')}: ${count(all.aggregates - all.system, 'aggregate')}${all.system > 0 ? ' and the audit log' : ''}, ${count(all.events, 'event')}, ${all.failures.length} failed`,
    );
    return lines.join('\n');
  },
  'aggregate.snapshot': (r) => {
    const s = r.snapshot as SnapshotRecord;
    const why = s.comment ? ` (comment: ${printable(s.comment)})` : '';
    return `snapshot of ${s.aggregate_type}/${s.aggregate_id} at version ${s.version}${why}, recorded in the audit log`;
  },
  'aggregate.archive': (r) =>
    `archived ${(r.audit as EventRecord).payload.aggregate} (audit #${(r.audit as EventRecord).version})`,
  'aggregate.restore': (r) =>
    `restored ${(r.audit as EventRecord).payload.aggregate} (audit #${(r.audit as EventRecord).version})`,
  'aggregate.commit': (r) => {
    if (r.discarded) {
      const d = r.discarded as StagedEvent[];
      return d.length === 0
        ? 'nothing staged: nothing to discard'
        : [
            `discarded ${d.length} staged event(s), none appended:`,
            ...d.map(
              (s) =>
                `  #${s.seq} ${s.request.event_type} on ${s.request.aggregate_type}/${s.request.aggregate_id}`,
            ),
          ].join('\n');
    }
    const c = r.committed as EventRecord[];
    if (c.length === 0) return 'nothing staged: nothing to commit';
    return [
      r.duplicate
        ? `already appended: the ${c.length} staged event(s) were appended before (same event ids); nothing written, the stage is cleared:`
        : `committed ${c.length} event(s) atomically:`,
      ...c.map((e) => `  ${e.aggregate_type}/${e.aggregate_id} v${e.version} ${e.event_type}`),
    ].join('\n');
  },
  'token.generate': (r) => {
    const t = r.token as TokenView & { token: string };
    return [
      `token for ${t.group}/${t.user} (shown only now; store it safely):`,
      '',
      `  ${t.token}`,
      '',
      `id ${t.id}, expires ${t.expires_at ?? 'never'}, writes ${t.limit ?? 'unlimited'}${t.keep_alive ? ', keep-alive' : ''}${t.read_only ? ', read-only' : ''}${t.scopes.length ? `, scopes ${t.scopes.join(' ')}` : ''}${t.audit ? ', reads the audit log' : ''}`,
    ].join('\n');
  },
  'token.revoke': (r) =>
    `revoked token ${(r.token as TokenView).id} (${(r.token as TokenView).group}/${(r.token as TokenView).user})`,
  'token.refresh': (r) => {
    const t = r.token as TokenView;
    return `refreshed token ${t.id}: expires ${t.expires_at ?? 'never'}, writes left ${t.remaining ?? 'unlimited'}`;
  },
  'audit.list': (r) =>
    table(
      (r.entries as EventRecord[]).map((e) => ({
        '#': e.version,
        at: e.metadata.created_at,
        by: issuerLabel(e.metadata.issued_by),
        action: e.event_type,
        details: Object.entries(e.payload)
          .filter(([, v]) => v !== '')
          .map(([k, v]) => `${k}=${v}`)
          .join(' '),
      })),
    ),
  'audit.verify': (r) => {
    const state = r.state as AuditStateReport | undefined;
    const lines = [verifyLine(r.report as VerifyReport)];
    if (state)
      lines.push(
        state.ok
          ? `${green('ok')}   schemas, tokens, archives, snapshot thresholds and plugins match the audit log`
          : state.problems.map((p) => `${red('FAIL')} ${printable(p)}`).join('\n'),
      );
    return lines.join('\n');
  },
  'checkpoint.show': (r) => (r.checkpoint as { note: string }).note.trimEnd(),
  'checkpoint.verify': (r) => {
    const v = r.verification as { from: { size: number }; to: { size: number; root: string } };
    return `${green('ok')} the current history (${count(v.to.size, 'event')}, root ${v.to.root}) extends the saved checkpoint of ${count(v.from.size, 'event')}`;
  },
  'checkpoint.public-key': (r) => String(r.public_key).trimEnd(),
  backup: (r) => {
    const b = r.backup as BackupReport;
    const entries = b.entries.main + b.entries.archive;
    // A server of an earlier version does not record backups, nor say it did.
    const audited =
      b.audit_entry === undefined ? '' : `\nrecorded in the audit log (audit #${b.audit_entry})`;
    const layout = b.layout === undefined ? '' : `\nlayout ${b.layout}`;
    // What a restore of it will need: the keys in force now, also after they are rotated.
    const keys =
      b.keys === undefined
        ? ''
        : `\nkeys master key ${b.keys.master_key}, DEK ${b.keys.dek} (key id ${b.keys.dek_id}): a restore needs these keys (fingerprints); keep them as long as this backup`;
    const removed = (b.removed_temp_dirs ?? [])
      .map((d) => `\nremoved ${printable(d)}, left by an earlier backup that did not finish`)
      .join('');
    return `${green('ok')} backed up ${count(b.events, 'event')} (${entries} ${entries === 1 ? 'entry' : 'entries'}, ${b.bytes} bytes) to ${printable(b.path)} in ${b.seconds} s\nledger_root ${b.ledger_root}${layout}${keys}${audited}${removed}`;
  },
  ...SCHEMA_HUMAN,
  ...PLUGIN_HUMAN,
};

/** Whether a result means failure (exit code 1) even though the operation itself ran. */
export function resultFailed(op: string, r: Record<string, unknown>): boolean {
  if (op === 'audit.verify')
    return !(r.report as VerifyReport).ok || (r.state as AuditStateReport | undefined)?.ok === false;
  if (op !== 'aggregate.verify') return false;
  if (r.report) return !(r.report as VerifyReport).ok;
  return !(r.all as VerifyAllReport).ok;
}
