import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderErrorDocs } from '../src/core/error-docs.js';
import { ERRORS, err, publicDetail, toEventDbxError } from '../src/core/errors.js';

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

describe("what an HTTP client is told of an error whose message may name the server's files", () => {
  it('an unexpected failure: the code and a generic detail, never what was thrown', () => {
    const e = toEventDbxError(new Error("ENOENT: no such file or directory, open '/srv/edbx/data/x'"));
    expect(e.message).toContain('/srv/edbx/data/x');
    expect(publicDetail(e)).toBe("internal error on the server; the server's log has the cause");
  });

  it('an integrity failure keeps its reason, or its summary when the reason names files', () => {
    const plain = err('EDBX_ERR_INTEGRITY', { where: 'patient/p-1', reason: 'version 3 hash mismatch' });
    expect(publicDetail(plain)).toBe(plain.message);
    const named = err('EDBX_ERR_INTEGRITY', {
      where: 'the store',
      reason: 'events 4-8 are lost; move /srv/edbx/data/acknowledged-head aside',
      summary: 'events 4-8 are lost',
    });
    expect(publicDetail(named)).toBe(
      "integrity check failed for the store: events 4-8 are lost; the server's log has the rest",
    );
  });
});
