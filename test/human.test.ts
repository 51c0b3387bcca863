/** Human-readable CLI output: counts read as English ("1 event", "2 events"). */
import { describe, expect, it } from 'vitest';
import { HUMAN, resultFailed } from '../src/cli/human.js';

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
