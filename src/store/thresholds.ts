/**
 * Automatic snapshot thresholds by aggregate type (absent: off), stored under `G snapshot-thresholds`
 * as JSON. Setting one is audited; the schemas, their audited source, may also give them without a
 * write (`useSnapshotThresholds`).
 */
import { err } from '../core/errors.js';
import { MAX_WHOLE, aggregateType } from '../core/names.js';
import type { StorageEngine } from '../storage/engine.js';
import { AUDIT_ID, AUDIT_TYPE } from './audit-log.js';
import * as K from './keys.js';
import type { EventStore } from './store.js';
import type { WriteContext } from './types.js';

/** The thresholds as stored (none when never set). */
export async function storedThresholds(engine: StorageEngine): Promise<Map<string, number>> {
  const t = await engine.get('main', K.globalKey('snapshot-thresholds'));
  return new Map<string, number>(t ? Object.entries(JSON.parse(t.toString('utf8')) as object) : []);
}

export class SnapshotThresholds {
  #by: Map<string, number>;

  constructor(by: Map<string, number>) {
    this.#by = by;
  }

  /** The threshold of an aggregate type; 0 when off. */
  of(type: string): number {
    return this.#by.get(type) ?? 0;
  }

  /** EventStore.setSnapshotThreshold: written and audited by an exclusive job of `store`. */
  async set(store: EventStore, type: string, every: number, ctx: WriteContext): Promise<void> {
    aggregateType(type);
    if (!Number.isSafeInteger(every) || every < 0) {
      throw err('EDBX_ERR_INVALID_ARGUMENT', {
        name: 'snapshot threshold',
        value: every,
        reason: `use a whole number from 0 to ${MAX_WHOLE}`,
      });
    }
    await store.exclusive([[AUDIT_TYPE, AUDIT_ID]], async (tx) => {
      const next = new Map(this.#by);
      if (every === 0) next.delete(type);
      else next.set(type, every);
      tx.put(K.globalKey('snapshot-thresholds'), Buffer.from(JSON.stringify(Object.fromEntries(next))));
      store.audit(tx, ctx, 'snapshot-threshold-set', { aggregate_type: type, every: String(every) });
      tx.afterCommit(() => (this.#by = next));
    });
  }

  /** EventStore.useSnapshotThresholds: these from now on, without writing them. */
  use(derived: ReadonlyMap<string, number>): void {
    const next = new Map(this.#by);
    for (const [type, every] of derived) {
      if (every === 0) next.delete(type);
      else next.set(type, every);
    }
    this.#by = next;
  }
}
