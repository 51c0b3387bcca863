/**
 * A server started with schema enforcement other than the configured `true` is in the audit log
 * (qa-schema #2): `start --restrict=false` switched off every schema check, locked fields included,
 * and nothing recorded it. The entry (`server-started`) says the mode, where it came from, what the
 * configuration says, and who started it; a start in the configured default records nothing.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryEngine } from '../../src/storage/memory/memory-engine.js';
import { auditEntries } from '../../src/store/audit-log.js';
import { verifyAuditLog } from '../../src/store/audit-state.js';
import { EventStore } from '../../src/store/index.js';
import { type StartMode, recordServerStart, startRecorded } from '../../src/store/server-started.js';

const host = { group: 'local', user: 'ops' };
let store: EventStore;
beforeEach(async () => {
  store = await EventStore.open({ engine: new MemoryEngine() });
});
afterEach(() => store.close());

describe('server-started audit entries (qa-schema #2)', () => {
  it.each<[StartMode, boolean]>([
    [{ restrict: 'true', source: 'configuration', configured: 'true' }, false],
    [{ restrict: 'true', source: '--restrict', configured: 'true' }, false],
    [{ restrict: 'false', source: '--restrict', configured: 'true' }, true],
    [{ restrict: 'false', source: 'environment EVENTDBX_RESTRICT', configured: 'true' }, true],
    [{ restrict: 'false', source: 'configuration', configured: 'false' }, true],
    [{ restrict: 'strict', source: 'configuration', configured: 'strict' }, true],
    // Looser than configured, though the default.
    [{ restrict: 'true', source: '--restrict', configured: 'strict' }, true],
  ])('%j: recorded %s', (mode, recorded) => {
    expect(startRecorded(mode)).toBe(recorded);
  });

  it('records the mode, its source, the configured mode and who, in a log that still verifies', async () => {
    expect(
      await recordServerStart(store, { restrict: 'true', source: 'configuration', configured: 'true' }, host),
    ).toBeUndefined();
    expect(await auditEntries(store)).toEqual([]);

    const mode: StartMode = { restrict: 'false', source: '--restrict', configured: 'true' };
    expect(await recordServerStart(store, mode, host)).toEqual({
      restrict: 'false',
      source: '--restrict',
      configured: 'true',
    });
    const [entry, ...rest] = await auditEntries(store);
    expect(rest).toEqual([]);
    expect(entry).toMatchObject({
      event_type: 'server-started',
      payload: { restrict: 'false', source: '--restrict', configured: 'true' },
      metadata: { issued_by: host },
    });
    expect((await verifyAuditLog(store)).ok).toBe(true);
  });
});
