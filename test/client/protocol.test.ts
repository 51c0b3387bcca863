/**
 * The shared wire protocol: its (independent) leaf bytes agree with the core's, the SSE
 * parser reads back what the formatter wrote however the bytes are split, and every code the SDK
 * raises is in the error registry.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CLIENT_ERROR_CODES } from '../../src/client/index.js';
import { ERRORS } from '../../src/core/errors.js';
import { leafDataOf } from '../../src/core/event.js';
import { type SseMessage, SseParser, formatComment, formatSse, leafBytes } from '../../src/protocol/index.js';

const text = fc.string({ unit: 'grapheme', maxLength: 12 });
const record = fc.record({
  aggregate_type: fc.stringMatching(/^[a-z0-9_-]{1,12}$/),
  aggregate_id: text.filter((s) => s.length > 0),
  event_type: fc.stringMatching(/^[a-z0-9_-]{1,12}$/),
  payload: fc.dictionary(text, text, { maxKeys: 5 }),
  metadata: fc.record({
    event_id: fc.uuid(),
    created_at: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
    issued_by: fc.record({ group: text, user: text }),
  }),
  version: fc.integer({ min: 1, max: 1e9 }),
  position: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  hash: fc.stringMatching(/^[0-9a-f]{64}$/),
  merkle_root: fc.stringMatching(/^[0-9a-f]{64}$/),
});

describe('protocol', () => {
  it('leafBytes is exactly the core leaf data of any record (hash and merkle_root excluded)', () => {
    fc.assert(
      fc.property(record, (r) => {
        const bytes = leafBytes(r);
        expect(bytes.equals(leafDataOf(r))).toBe(true);
        expect(leafBytes({ ...r, hash: '0'.repeat(64), merkle_root: 'f'.repeat(64) }).equals(bytes)).toBe(
          true,
        );
      }),
    );
  });

  it('the SSE parser reads back every block however the stream is split, with any line ending', () => {
    const block = fc.record(
      {
        id: fc.oneof(fc.nat().map(String), fc.constant('')),
        event: fc.constantFrom('event', 'error', 'x'),
        data: fc.json().map((j) => j.replace(/[\r\n]/g, ' ')),
      },
      { requiredKeys: [] },
    );
    const item = fc.oneof(block, fc.constant('heartbeat' as const));
    fc.assert(
      fc.property(
        fc.array(item, { maxLength: 12 }),
        fc.constantFrom('\n', '\r\n', '\r'),
        fc.array(fc.nat(), { maxLength: 30 }),
        fc.boolean(),
        (items, eol, cuts, bom) => {
          let wire = bom ? '\ufeff' : '';
          const expected: SseMessage[] = [];
          for (const it of items) {
            if (it === 'heartbeat') {
              wire += formatComment('heartbeat');
              continue;
            }
            wire += formatSse(it);
            if (it.id === undefined && it.event === undefined && it.data === undefined) continue; // empty block
            expected.push({
              ...(it.id === undefined ? {} : { id: it.id }),
              event: it.event ?? '',
              data: it.data ?? '',
              hasData: it.data !== undefined,
            });
          }
          wire = wire.replace(/\n/g, eol);
          // A trailing '\r' could still become '\r\n': a real stream ends with more data or closes.
          const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
          const parser = new SseParser();
          const got: SseMessage[] = [];
          let at = 0;
          for (const p of [...points, wire.length]) {
            got.push(...parser.push(wire.slice(at, p)));
            at = p;
          }
          if (eol === '\r') got.push(...parser.push('\n'));
          expect(got).toEqual(expected);
        },
      ),
    );
  });

  it('every code the SDK raises is in the error registry, documented', () => {
    for (const code of CLIENT_ERROR_CODES) {
      expect(ERRORS).toHaveProperty(code);
      expect((ERRORS as Record<string, { doc: string }>)[code]!.doc.length).toBeGreaterThan(10);
    }
  });

  it('the SDK loads only the protocol, the pure verifiers and makeDir: no server, store, storage or CLI code', async () => {
    const src = fileURLToPath(new URL('../../src/', import.meta.url));
    const allowed = [
      'core/checkpoint.ts',
      'core/errors.ts',
      'core/merkle/hash.ts',
      'core/merkle/verify.ts',
      'fs/make-dir.ts', // the trust store's directory (node:fs only)
    ];
    const seen = new Set<string>();
    const visit = async (file: string): Promise<void> => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = await readFile(path.join(src, file), 'utf8');
      // Runtime imports only: `import type` and `export type` vanish from the build.
      for (const m of text.matchAll(/^(?:import|export)\s+(?!type\s)(?:[^;]*?from\s+)?'(\.[^']+)'/gms)) {
        await visit(
          path.relative(src, path.resolve(path.dirname(path.join(src, file)), m[1]!.replace(/\.js$/, '.ts'))),
        );
      }
    };
    await visit('client/index.ts');
    const outside = [...seen].filter((f) => !f.startsWith('client/') && !f.startsWith('protocol/'));
    expect(outside.sort()).toEqual(allowed.filter((f) => seen.has(f)).sort());
    expect(outside.every((f) => allowed.includes(f))).toBe(true);
    expect(seen.has('client/verify.ts') && seen.has('protocol/sse.ts')).toBe(true);
  });
});
