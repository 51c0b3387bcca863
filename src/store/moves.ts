/**
 * Archive and restore move an aggregate's events, Merkle nodes and snapshots between the `main` and
 * `archive` keyspaces. A read takes the keyspace from the meta, then reads there: one that took it
 * before a move and reads after the move committed finds nothing, which is not damage. The store
 * counts the moves (begun before their write, settled once published) so that such a read runs
 * again where the data is now, while what is missing without a move is still reported as damage.
 *
 * A count, not a second look at the archived flag: an aggregate archived and restored while a read
 * ran is live again when the read fails, as it was when it began. And a move's write can land before
 * the store has published its metas, so a read may miss the data while its meta still names the old
 * keyspace: it waits for the moves under way to settle before it reads again.
 */
import { isEventDbxError } from '../core/errors.js';
import type { WriteTx } from './tx.js';

/** How many times a read that raced a move runs before its error stands. */
const ATTEMPTS = 5;

/** Whether a transaction archives or restores an aggregate (moves its data between keyspaces). */
export const movesAggregate = (tx: WriteTx): boolean =>
  [...tx.metas].some(
    ([k, live]) => live !== null && live.meta.archived !== (tx.loaded.get(k)?.meta.archived ?? false),
  );

export class Moves {
  #begun = 0;
  /** Moves begun and not yet settled (written and published, or refused). */
  readonly #underWay = new Set<Promise<void>>();

  /** Count a move before its write; call what it returns once it has settled. */
  begin(): () => void {
    this.#begun++;
    let end!: () => void;
    const settled = new Promise<void>((resolve) => (end = resolve));
    this.#underWay.add(settled);
    return () => {
      this.#underWay.delete(settled);
      end();
    };
  }

  /**
   * Watch for moves from now on: whether one was under way now or began since (a verification that
   * found something missing asks, and verifies again once `settled`).
   */
  watch(): () => boolean {
    const begun = this.#begun;
    const underWay = this.#underWay.size > 0;
    return () => underWay || this.#begun !== begun;
  }

  /** Resolves once the moves under way now have settled. */
  async settled(): Promise<void> {
    await Promise.all(this.#underWay);
  }

  /**
   * Run `read` (which picks keyspaces from metas), again when it failed with what a move explains (an
   * event, node or snapshot missing: EDBX_ERR_INTEGRITY or EDBX_ERR_EVENT_NOT_FOUND) and a move was
   * under way when it began or began since. Bounded: a read that keeps racing moves gives the error
   * it last met.
   */
  async despite<T>(read: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const raced = this.watch();
      try {
        return await read();
      } catch (e) {
        const missing =
          isEventDbxError(e, 'EDBX_ERR_INTEGRITY') || isEventDbxError(e, 'EDBX_ERR_EVENT_NOT_FOUND');
        if (!missing || !raced() || attempt >= ATTEMPTS) throw e;
        // Once they have settled, the metas name the keyspace the data is in now.
        await this.settled();
      }
    }
  }
}
