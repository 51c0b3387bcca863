/** `eventdbx plugin …` command table (flags exactly as the spec). */
import type { CommandSpec } from '../spec.js';

export const PLUGIN_COMMANDS: CommandSpec[] = [];
