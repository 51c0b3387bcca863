/** `eventdbx schema …` command table (flags exactly as the spec). */
import type { CommandSpec } from '../spec.js';

export const SCHEMA_COMMANDS: CommandSpec[] = [];
