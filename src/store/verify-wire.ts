/**
 * Segments and their outcomes as they cross to and from verification workers (structured clone turns
 * Buffers into plain Uint8Arrays, and errors lose their class).
 */
import type { Payload } from '../core/event.js';
import type { Frontier } from '../core/merkle/index.js';
import { type ErrorCode, err, toEventDbxError } from '../core/errors.js';
import type { Space } from '../storage/engine.js';
import type { SharedCodec } from './codec.js';
import type { VerifyReport } from './types.js';
import { Bad, type Outcome, type Segment, type SnapshotRest, Stopped } from './verify-segment.js';

export type { Outcome };

interface WireFrontier {
  readonly size: number;
  readonly nodes: readonly Uint8Array[];
}

export interface WireSegment {
  readonly type: string;
  readonly id: string;
  readonly space: Space;
  readonly frontier: WireFrontier;
  readonly to: number | undefined;
}

/** Verify a segment (its outcome comes back), or whole aggregates by type and id (reports come back). */
export type TaskMessage =
  | {
      readonly kind: 'segment';
      readonly task: number;
      readonly codec: SharedCodec;
      readonly segment: WireSegment;
      readonly cancel?: Int32Array | undefined;
    }
  | {
      readonly kind: 'aggregates';
      readonly task: number;
      readonly codec: SharedCodec;
      readonly aggregates: ReadonlyArray<readonly [string, string]>;
      /** Set to 1 when the caller gave up (its client went away): the task stops between chunks. */
      readonly cancel?: Int32Array | undefined;
    };

export type TaskAnswer =
  | { readonly outcome: WireOutcome }
  | { readonly reports: VerifyReport[] }
  | { readonly failure: WireFailure };

type WireFailure =
  | { readonly ok: false; readonly bad: number; readonly reason: string }
  | { readonly ok: false; readonly code: ErrorCode; readonly params: Record<string, unknown> };

export type WireOutcome =
  | {
      readonly ok: true;
      readonly state: Payload;
      readonly frontier: WireFrontier;
      readonly snapshots: readonly SnapshotRest[];
    }
  | WireFailure;

const toBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
const fromWireFrontier = (f: WireFrontier): Frontier => ({ size: f.size, nodes: f.nodes.map(toBuffer) });

export const fromWireSegment = (s: WireSegment): Segment => ({
  ...s,
  frontier: fromWireFrontier(s.frontier),
});

export function toWireOutcome(o: Outcome): WireOutcome {
  if (o.ok)
    return { ok: true, state: o.result.state, frontier: o.result.frontier, snapshots: o.result.snapshots };
  return toWireFailure(o.failure);
}

export function toWireFailure(f: unknown): WireFailure {
  if (f instanceof Bad) return { ok: false, bad: f.version, reason: f.message };
  const e = f instanceof Stopped ? err('EDBX_ERR_STORE_NOT_OPEN') : toEventDbxError(f);
  // Plain data only: anything else in the params would fail to cross the thread boundary.
  return { ok: false, code: e.code, params: JSON.parse(JSON.stringify(e.params)) as Record<string, unknown> };
}

export function fromWireOutcome(w: WireOutcome): Outcome {
  if (w.ok)
    return {
      ok: true,
      result: { state: w.state, frontier: fromWireFrontier(w.frontier), snapshots: w.snapshots },
    };
  return { ok: false, failure: fromWireFailure(w) };
}

/** The failure as it was thrown: `Bad` for integrity problems, else the coded error. */
export const fromWireFailure = (w: WireFailure): Error =>
  'bad' in w ? new Bad(w.bad, w.reason) : err(w.code, w.params);
