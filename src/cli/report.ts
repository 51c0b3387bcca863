/** The CLI's one error edge: one line on stderr with the stable code; exit 1 (user) or 2 (usage). */
import { type EventDbxError, exitCodeFor } from '../core/errors.js';

export function reportError(e: EventDbxError): number {
  process.stderr.write(`error: ${e.message} [${e.code}]\n`);
  return exitCodeFor(e);
}
