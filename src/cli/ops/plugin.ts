/** Plugin operations and their human-readable output. */
import type { Op, Renderer } from './types.js';

export const PLUGIN_OPS: Record<string, Op> = {};
export const PLUGIN_HUMAN: Record<string, Renderer> = {};
