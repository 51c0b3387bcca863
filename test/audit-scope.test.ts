/**
 * Which audit log entries a token limited to some aggregates sees (auditor QA, finding 3): every kind
 * of entry the store writes, by what it is about. GET /v1/audit's own test covers the HTTP side.
 */
import { describe, expect, it } from 'vitest';
import { auditEntryVisible } from '../src/core/audit-scope.js';
import { scopesOverlap } from '../src/core/tokens.js';

const ANN = ['patient/p-001'];
const known: Record<string, string[]> = {
  edbx_billing: ['billing'],
  edbx_all: [],
  edbx_p1: ['patient/p-001'],
};
const seen = (scopes: string[], event_type: string, payload: Record<string, string>) =>
  auditEntryVisible(scopes, { event_type, payload }, (id) => known[id]);

describe('auditEntryVisible', () => {
  it('shows every entry to a token without scopes', () => {
    expect(seen([], 'aggregate-archived', { aggregate: 'billing/b-1' })).toBe(true);
    expect(seen([], 'token-generated', { token: 'edbx_billing', scopes: 'billing' })).toBe(true);
  });

  it('shows entries about an aggregate or a type only when the scopes cover it', () => {
    for (const event of ['aggregate-archived', 'aggregate-restored', 'aggregate-snapshot-taken']) {
      expect(seen(ANN, event, { aggregate: 'patient/p-001' }), event).toBe(true);
      expect(seen(ANN, event, { aggregate: 'patient/p-002' }), event).toBe(false);
      expect(seen(['patient'], event, { aggregate: 'patient/p-002' }), event).toBe(true);
    }
    for (const event of ['schema-created', 'schema-altered', 'plugin-mapped']) {
      expect(seen(ANN, event, { aggregate: 'patient' }), event).toBe(true);
      expect(seen(ANN, event, { aggregate: 'billing' }), event).toBe(false);
    }
    expect(seen(ANN, 'snapshot-threshold-set', { aggregate_type: 'patient', every: '10' })).toBe(true);
    expect(seen(ANN, 'snapshot-threshold-set', { aggregate_type: 'billing', every: '10' })).toBe(false);
  });

  it('shows entries about tokens that can reach its aggregates, by their record or their entry', () => {
    expect(seen(ANN, 'token-revoked', { token: 'edbx_all', user: 'joy' })).toBe(true);
    expect(seen(ANN, 'token-refreshed', { token: 'edbx_p1' })).toBe(true);
    expect(seen(ANN, 'token-revoked', { token: 'edbx_billing', user: 'carl' })).toBe(false);
    // The record decides; the entry's comma-joined scopes only when there is none.
    expect(seen(ANN, 'token-generated', { token: 'edbx_billing', scopes: 'patient' })).toBe(false);
    expect(seen(ANN, 'token-generated', { token: 'edbx_gone', scopes: 'patient' })).toBe(true);
    expect(seen(ANN, 'token-generated', { token: 'edbx_gone', scopes: 'billing,patient/p-002' })).toBe(false);
    expect(seen(ANN, 'token-generated', { token: 'edbx_gone', scopes: '' })).toBe(true);
    // Its `scope_list` before them: `billing/x,patient/p-001` is one scope, not one covering p-001.
    const one = {
      token: 'edbx_gone',
      scopes: 'billing/x,patient/p-001',
      scope_list: '["billing/x,patient/p-001"]',
    };
    expect(seen(ANN, 'token-generated', one)).toBe(false);
    expect(seen(ANN, 'token-generated', { ...one, scope_list: '["billing/x","patient/p-001"]' })).toBe(true);
    // A token with no record and no scopes in its entry is shown: hiding it could hide a revocation.
    expect(seen(ANN, 'token-revoked', { token: 'edbx_gone' })).toBe(true);
  });

  it('shows the entries about the store as a whole', () => {
    for (const event of [
      'config-changed',
      'store-restored',
      'plugin-configured',
      'plugin-disabled',
      'plugin-removed',
      'plugin-replayed',
      'plugin-retried',
    ])
      expect(seen(ANN, event, { plugin: 'postgres' }), event).toBe(true);
    // A backup copies every aggregate, the auditor's too.
    const backup = { path: '/backups/b1', taken_at: '2026-11-30T02:00:00Z', events: '12', ledger_root: 'ab' };
    expect(seen(ANN, 'backup-taken', backup)).toBe(true);
    // Schema enforcement off applies to p-001 too (qa-schema #2).
    const started = { restrict: 'false', source: '--restrict', configured: 'true' };
    expect(seen(ANN, 'server-started', started)).toBe(true);
  });
});

describe('scopesOverlap', () => {
  it('shares an aggregate: a type covers its ids, an empty set covers everything', () => {
    expect(scopesOverlap(['patient'], ['patient/p-1'])).toBe(true);
    expect(scopesOverlap(['patient/p-1'], ['patient/p-1'])).toBe(true);
    expect(scopesOverlap(['patient/p-1'], ['patient/p-2'])).toBe(false);
    expect(scopesOverlap(['patient/p-1'], ['billing'])).toBe(false);
    expect(scopesOverlap([], ['billing'])).toBe(true);
    expect(scopesOverlap(['billing/b-1', 'patient/p-1'], ['order', 'patient'])).toBe(true);
  });
});
