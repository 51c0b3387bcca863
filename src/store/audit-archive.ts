/**
 * Archive states against the audit log. Archiving and restoring are audited, atomically with the move:
 * so an aggregate whose last archive or restore entry is an archive must be archived (the stub in the
 * main keyspace says so, the full meta and the events are in the archive keyspace, at the version and
 * root the entry records, since appends are refused while archived), one whose last entry is a restore
 * must be live, and every aggregate in the archive keyspace must have been archived by an entry. An
 * aggregate quietly "unarchived" (its pre-archive meta put back, its events moved back) or archived
 * behind the log's back shows up here.
 */
import { isEventDbxError } from '../core/errors.js';
import type { EventRecord } from '../core/event.js';
import { type Space, prefixEnd } from '../storage/engine.js';
import { openJson } from './codec.js';
import * as K from './keys.js';
import type { EventStore } from './store.js';
import type { AggregateMeta } from './types.js';

/** The last archive or restore entry of an aggregate. */
interface Move {
  readonly archived: boolean;
  /** The audit log version of the entry, to name it. */
  readonly entry: number;
  readonly version: string | undefined;
  readonly root: string | undefined;
}

/** One line per aggregate whose archive state is not what the audit log says. */
export async function verifyArchiveStates(store: EventStore, log: readonly EventRecord[]): Promise<string[]> {
  const moves = new Map<string, Move>();
  for (const e of log) {
    const archived = e.event_type === 'aggregate-archived';
    if ((archived || e.event_type === 'aggregate-restored') && e.payload.aggregate)
      moves.set(e.payload.aggregate, {
        archived,
        entry: e.version,
        version: e.payload.version,
        root: e.payload.merkle_root,
      });
  }
  const problems: string[] = [];
  for (const [name, move] of moves) {
    const slash = name.indexOf('/');
    // Aggregate types never hold '/', so the first one ends the type.
    const problem = await checkMove(store, name.slice(0, slash), name.slice(slash + 1), move);
    if (problem) problems.push(`aggregate ${name}: ${problem}`);
  }
  // The other way round: whatever the archive keyspace holds was archived by an entry.
  const prefix = K.metaPrefix();
  for await (const [k] of store.engine.range('archive', { gte: prefix, lt: prefixEnd(prefix) })) {
    const { type, id } = K.decodeMetaKey(k);
    if (!moves.has(`${type}/${id}`))
      problems.push(`aggregate ${type}/${id}: archived, but the audit log never recorded its archiving`);
  }
  return problems;
}

async function checkMove(
  store: EventStore,
  type: string,
  id: string,
  move: Move,
): Promise<string | undefined> {
  const says = move.archived
    ? `the audit log records its archiving (entry ${move.entry})`
    : `the audit log records its restore (entry ${move.entry})`;
  const key = K.metaKey(type, id);
  const [stub, full] = await Promise.all([store.engine.get('main', key), store.engine.get('archive', key)]);
  if (!stub) return `missing, ${says}`;
  let meta: AggregateMeta;
  try {
    meta = openJson<AggregateMeta>(store.env.codec, stub, `aggregate ${type}/${id}`);
  } catch (e) {
    if (isEventDbxError(e)) return e.message;
    throw e;
  }
  if (meta.archived !== move.archived) return `${meta.archived ? 'archived' : 'live'}, ${says}`;
  if (move.archived) {
    if (!full) return `its archived state is missing from the archive keyspace, ${says}`;
    if (await holdsEvents(store, 'main', type, id)) return `events are in live storage, ${says}`;
    let archived: AggregateMeta;
    try {
      archived = openJson<AggregateMeta>(store.env.codec, full, `archived aggregate ${type}/${id}`);
    } catch (e) {
      if (isEventDbxError(e)) return e.message;
      throw e;
    }
    if (String(archived.version) !== move.version || archived.merkle_root !== move.root)
      return `archived at version ${archived.version} (root ${archived.merkle_root}), ${says} at version ${move.version} (root ${move.root})`;
    return undefined;
  }
  if (full) return `its archived state is in the archive keyspace, ${says}`;
  if (await holdsEvents(store, 'archive', type, id)) return `events are in the archive keyspace, ${says}`;
  return undefined;
}

async function holdsEvents(store: EventStore, space: Space, type: string, id: string): Promise<boolean> {
  const prefix = K.eventPrefix(type, id);
  for await (const _ of store.engine.range(space, { gte: prefix, lt: prefixEnd(prefix), limit: 1 }))
    return true;
  return false;
}
