/**
 * Segments and their outcomes as they cross to and from verification workers (structured clone turns
 * Buffers into plain Uint8Arrays, and errors lose their class).
 */
import type { Payload } from '../core/event.js';
import type { Frontier } from '../core/merkle/index.js';
import { type ErrorCode, err, toEventDbxError } from '../core/errors.js';
import type { Space } from '../storage/engine.js';
import type { SharedCodec } from './codec.js';
import { Bad, type Segment, type SegmentResult, Stopped } from './verify-segment.js';

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

export interface TaskMessage {
  readonly kind: 'verify';
  readonly task: number;
  readonly codec: SharedCodec;
  readonly segments: readonly WireSegment[];
}

export type WireOutcome =
  | { readonly ok: true; readonly state: Payload; readonly frontier: WireFrontier }
  | { readonly ok: false; readonly bad: number; readonly reason: string }
  | { readonly ok: false; readonly code: ErrorCode; readonly params: Record<string, unknown> };

/** What verifying a segment came to: its result, or what stopped it. */
export type Outcome =
  { readonly ok: true; readonly result: SegmentResult } | { readonly ok: false; readonly failure: unknown };

const toBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
const fromWireFrontier = (f: WireFrontier): Frontier => ({ size: f.size, nodes: f.nodes.map(toBuffer) });

export const toWireSegment = (s: Segment): WireSegment => s;

export const fromWireSegment = (s: WireSegment): Segment => ({
  ...s,
  frontier: fromWireFrontier(s.frontier),
});

export function toWireOutcome(o: Outcome): WireOutcome {
  if (o.ok) return { ok: true, state: o.result.state, frontier: o.result.frontier };
  const f = o.failure;
  if (f instanceof Bad) return { ok: false, bad: f.version, reason: f.message };
  const e = f instanceof Stopped ? err('EDBX_ERR_STORE_NOT_OPEN') : toEventDbxError(f);
  // Plain data only: anything else in the params would fail to cross the thread boundary.
  return { ok: false, code: e.code, params: JSON.parse(JSON.stringify(e.params)) as Record<string, unknown> };
}

export function fromWireOutcome(w: WireOutcome): Outcome {
  if (w.ok) return { ok: true, result: { state: w.state, frontier: fromWireFrontier(w.frontier) } };
  if ('bad' in w) return { ok: false, failure: new Bad(w.bad, w.reason) };
  return { ok: false, failure: err(w.code, w.params) };
}
