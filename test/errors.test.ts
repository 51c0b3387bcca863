import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderErrorDocs } from '../src/core/error-docs.js';
import { ERRORS, err } from '../src/core/errors.js';

describe('error registry', () => {
  it('documents every code in docs/errors.md (regenerate with npm run docs:errors)', () => {
    const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
    expect(doc).toBe(renderErrorDocs());
    for (const code of Object.keys(ERRORS)) expect(doc).toContain(`\`${code}\``);
  });

  it('gives every code a stable EDBX_ERR_ name, an HTTP status, a doc line and a one-line message', () => {
    for (const [code, spec] of Object.entries(ERRORS)) {
      expect(code).toMatch(/^EDBX_ERR_[A-Z_]+$/);
      expect(spec.status).toBeGreaterThanOrEqual(400);
      expect(spec.doc.length).toBeGreaterThan(10);
      const message = err(code as keyof typeof ERRORS, {
        value: 'x',
        reason: 'the reason',
        path: '/p',
      }).message;
      expect(message).not.toContain('\n');
      expect(message.length).toBeGreaterThan(5);
    }
  });
});
