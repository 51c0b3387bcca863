/** Renders the error registry as Markdown (docs/errors.md); a test keeps the file in step. */
import { ERRORS } from './errors.js';

export function renderErrorDocs(): string {
  const rows = Object.entries(ERRORS).map(
    ([code, spec]) => `| \`${code}\` | ${spec.status} | ${spec.doc.replace(/\|/g, '\\|')} |`,
  );
  return [
    '# Error codes',
    '',
    'Every error EventDBX reports carries one of these stable codes: in the `code` field of an',
    '`application/problem+json` HTTP response, and in brackets at the end of the CLI error line.',
    'Codes never change meaning; messages may be reworded. Generated from `src/core/errors.ts`',
    '(`npm run docs:errors`).',
    '',
    '| Code | HTTP | Meaning |',
    '| --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}
