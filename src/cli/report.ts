/**
 * The CLI's one error edge: one line on stderr with the stable code (a JSON line in the daemon's log,
 * see stderr.ts); exit 1 (user) or 2 (usage).
 */
import { type EventDbxError, exitCodeFor } from '../core/errors.js';
import { errorLine } from './stderr.js';

export function reportError(e: EventDbxError): number {
  errorLine(e.message, e.code);
  return exitCodeFor(e);
}
