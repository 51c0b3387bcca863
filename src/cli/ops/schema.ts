/** Schema operations and their human-readable output. */
import type { Op, Renderer } from './types.js';

export const SCHEMA_OPS: Record<string, Op> = {};
export const SCHEMA_HUMAN: Record<string, Renderer> = {};
