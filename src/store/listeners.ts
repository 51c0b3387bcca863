/**
 * Who a store tells of its commits: commit listeners, told each batch's records (one that fails is
 * reported, by default as a process warning, and stops neither the others nor the writer), and
 * listeners told how many seconds each durable batch took to write (metrics).
 */
import type { EventRecord } from '../core/event.js';

export type CommitListener = (records: readonly EventRecord[]) => void;

export class CommitListeners {
  readonly #committed = new Set<CommitListener>();
  readonly #written = new Set<(seconds: number) => void>();
  #error: (e: unknown) => void = (e) =>
    process.emitWarning(`EventDBX commit listener failed: ${e instanceof Error ? e.message : String(e)}`, {
      code: 'EDBX_LISTENER_FAILED',
    });

  /** EventStore.onCommit: returns the function that stops telling. */
  onCommit(listener: CommitListener): () => void {
    this.#committed.add(listener);
    return () => this.#committed.delete(listener);
  }

  /** EventStore.onBatchWritten: returns the function that stops telling. */
  onBatchWritten(listener: (seconds: number) => void): () => void {
    this.#written.add(listener);
    return () => this.#written.delete(listener);
  }

  /** EventStore.onListenerError: where failures of commit listeners are reported. */
  onError(report: (e: unknown) => void): void {
    this.#error = report;
  }

  /** A batch committed these records. */
  committed(records: readonly EventRecord[]): void {
    if (records.length === 0) return;
    for (const l of this.#committed) {
      // A failing listener (a subscriber, a plugin queue) must not stop the others or the
      // writer: what it missed is still in the store.
      try {
        l(records);
      } catch (e) {
        this.#error(e);
      }
    }
  }

  /** A durable batch took this many seconds to write. */
  written(seconds: number): void {
    for (const l of this.#written) l(seconds);
  }
}
