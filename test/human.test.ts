/** Human-readable CLI output: counts read as English ("1 event", "2 events"); tables of any size. */
import { describe, expect, it } from 'vitest';
import { HUMAN, resultFailed } from '../src/cli/human.js';
import { keyValues, table, tableStream } from '../src/cli/output.js';

const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');

describe('human output of aggregate verify', () => {
  it('counts the ledger, aggregates and events in the singular and the plural', () => {
    const all = (events: number, system = 0) => ({
      all: {
        ok: true,
        aggregates: events,
        system,
        events,
        failures: [],
        ledger: { ok: true, size: events, root: 'ab'.repeat(32) },
      },
    });
    const one = plain(String(HUMAN['aggregate.verify']!(all(1))));
    expect(one).toContain('ledger: 1 event, root');
    expect(one).toContain('verified: 1 aggregate, 1 event, 0 failed');
    const two = plain(String(HUMAN['aggregate.verify']!(all(2))));
    expect(two).toContain('ledger: 2 events, root');
    expect(two).toContain('verified: 2 aggregates, 2 events, 0 failed');
    // The audit log is verified too, but it is not one of the user's aggregates (list hides it).
    const audited = plain(String(HUMAN['aggregate.verify']!(all(2, 1))));
    expect(audited).toContain('verified: 1 aggregate and the audit log, 2 events, 0 failed');
  });
});

describe('human output of audit verify', () => {
  it('reports a missing audit log as a failure, not as "ok version 0" (audit finding 14)', () => {
    const report = {
      aggregate_type: '$audit',
      aggregate_id: 'log',
      ok: false,
      version: 0,
      merkle_root: '',
      reason: 'missing, but its events are stored',
    };
    const out = plain(String(HUMAN['audit.verify']!({ report })));
    expect(out).toBe('FAIL $audit/log: missing, but its events are stored');
    expect(resultFailed('audit.verify', { report })).toBe(true);
  });
});

describe('human output of a large listing (QA4 #6)', () => {
  it('prints a table of 200,000 aggregates a page at a time, one line each, in aligned columns', () => {
    const n = 200_000;
    const rows = Array.from({ length: n }, (_, i) => ({
      aggregate: `customer/c-${String(i).padStart(6, '0')}`,
      version: (i % 9) + 1,
      merkle_root: 'ab'.repeat(32),
      status: 'live',
    }));
    // Before: Math.max(...rows) took one argument per row: "Maximum call stack size exceeded".
    const streamed = tableStream();
    let text = '';
    for (let i = 0; i < n; i += 1000) text += streamed.rows(rows.slice(i, i + 1000));
    text += streamed.end();
    const lines = plain(text).trimEnd().split('\n');
    expect(lines).toHaveLength(n + 1);
    const width = 'customer/c-199999'.length;
    expect(lines[0]).toMatch(new RegExp(`^AGGREGATE {${width - 'AGGREGATE'.length + 2}}VERSION`));
    expect(lines[1]).toBe(`${'customer/c-000000'}  1        ${'ab'.repeat(32)}  live`);
    expect(lines[n]).toBe(`${'customer/c-199999'}  2        ${'ab'.repeat(32)}  live`);
    // Up to one page, the text `table` prints of the same rows.
    const small = tableStream();
    expect(small.rows(rows.slice(0, 10)) + small.end()).toBe(`${table(rows.slice(0, 10))}\n`);
  });

  it('measures a streamed table on its first 1,000 rows: a wider cell later pushes only its own row', () => {
    const row = (id: string) => ({ aggregate: `customer/${id}`, version: 1, status: 'live' });
    const streamed = tableStream();
    let text = streamed.rows(Array.from({ length: 1000 }, (_, i) => row(`c-${String(i).padStart(3, '0')}`)));
    text += streamed.rows([row('c-1000-much-longer'), row('c-1001')]) + streamed.end();
    const lines = plain(text).trimEnd().split('\n');
    expect(lines.slice(-2)).toEqual([
      'customer/c-1000-much-longer  1        live',
      'customer/c-1001  1        live',
    ]);
    expect(lines[1]).toBe('customer/c-000  1        live');
  });

  it('prints the key-value view of an object with 200,000 keys', () => {
    const obj = Object.fromEntries(Array.from({ length: 200_000 }, (_, i) => [`k${i}`, i]));
    const lines = plain(keyValues(obj)).split('\n');
    expect(lines).toHaveLength(200_000);
    expect(lines[0]).toBe(`${'k0'.padEnd('k199999'.length)}  0`);
  });
});
