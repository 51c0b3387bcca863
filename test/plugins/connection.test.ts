/**
 * PostgreSQL connection strings (QA items 1 and 2): URLs that cannot be read one way only are refused
 * without quoting the secret, masking never shows a raw string, and libpq key=value strings deliver to
 * a real PostgreSQL.
 */
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isEventDbxError } from '../../src/core/errors.js';
import { type DeliveryHost, configurePlugin, listPlugins } from '../../src/plugins/index.js';
import { driverConnectionString, parseConnection } from '../../src/plugins/postgres/connection.js';
import { buildSettings, describeTarget, maskedSettings } from '../../src/plugins/settings.js';
import { DEFAULT_DELIVERY, type PluginConfig } from '../../src/plugins/types.js';
import type { EventStore } from '../../src/store/index.js';
import { FAST, caughtUp, jane, openStore, startHost } from './fixtures.js';
import { type PgServer, startPostgres } from './pg-harness.js';

/** What `plugin list`, the API and the audit log show of a stored connection string. */
function shown(connection: string): string {
  const config: PluginConfig = {
    name: 'postgres',
    kind: 'postgres',
    enabled: true,
    settings: { connection },
    delivery: DEFAULT_DELIVERY,
    created_at: '',
    updated_at: '',
  };
  const masked = maskedSettings(config).connection as string;
  expect(describeTarget(config)).toBe(masked);
  return masked;
}

function refusal(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (e) {
    if (isEventDbxError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('PostgreSQL connection strings that cannot be read one way only (QA item 1)', () => {
  it('are refused with a coded error that says to percent-encode and never quotes the password', () => {
    for (const bad of [
      'postgres://u:Sup3r Secret@127.0.0.1:7550/db',
      'postgres://u:Sup3r@Secret@127.0.0.1:7550/db',
      'postgres://u:Sup3r/Secret@127.0.0.1:7550/db',
      'postgres://u:Sup3r?Secret@127.0.0.1:7550/db',
      'postgres://u:Sup3r#Secret@127.0.0.1:7550/db',
      'postgres://u:Sup3r%zzSecret@127.0.0.1:7550/db',
    ]) {
      const r = refusal(() => buildSettings('postgres', { connection: bad }));
      expect(r.code, bad).toBe('EDBX_ERR_PLUGIN_CONFIG_INVALID');
      expect(r.message, bad).not.toContain('Secret');
      expect(r.message).not.toContain('\n');
      if (!bad.includes('/Secret') && !bad.includes('#')) expect(r.message, bad).toContain('percent-encode');
    }
  });

  it('masking shows no part of the password, whatever the string (property)', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string(), (password, prefix) => {
        const secret = `S3cr3t${password}`;
        for (const s of [
          `postgres://u:${secret}@127.0.0.1:5432/db`,
          `${prefix}postgres://u:${secret}@h/db`,
          `host=h password=${secret} dbname=d`,
          `host=h password='${secret.replace(/[\\']/g, '\\$&')}' dbname=d`,
          secret,
        ]) {
          expect(shown(s)).not.toContain('S3cr3t');
        }
      }),
    );
    // (The usual forms are masked as units.test.ts 'masking secrets' shows.) Stored before connection strings were checked: hidden whole, never shown raw.
    expect(shown('postgres://u:Sup3r Secret@h/db')).toBe('*** (unreadable connection string)');
  });
});

describe('libpq key=value connection strings (QA item 2)', () => {
  it('become the equivalent URL for the driver, quoted values and escapes included', () => {
    expect(
      driverConnectionString("host=db port=6543 user=bob password='a b\\'c' dbname=app sslmode=require"),
    ).toBe("postgres://bob:a%20b'c@db:6543/app?sslmode=require");
    expect(driverConnectionString('host = /run/postgresql dbname=app')).toBe(
      'postgres:///app?host=%2Frun%2Fpostgresql',
    );
    expect(refusal(() => parseConnection('host=db colour=blue')).message).toContain(
      'unknown keyword "colour"',
    );
    expect(refusal(() => parseConnection("host=db password='open")).message).not.toContain('open');
    expect(refusal(() => parseConnection('host=db port=abc')).message).toContain('port "abc"');
  });

  it('refuse an sslmode the driver does not know (it would silently read it as verify-full)', () => {
    for (const bad of [
      'host=db sslmode=bogus',
      'postgres://u@db/app?sslmode=bogus',
      'postgres://db/a?x=1&sslmode=Require',
    ]) {
      const r = refusal(() => parseConnection(bad));
      expect(r.code, bad).toBe('EDBX_ERR_PLUGIN_CONFIG_INVALID');
      expect(r.message, bad).toMatch(/sslmode "(bogus|Require)" is not known: use disable, prefer, require/);
    }
    for (const mode of ['disable', 'prefer', 'require', 'verify-ca', 'verify-full', 'no-verify']) {
      expect(parseConnection(`host=db sslmode=${mode}`).form).toBe('pairs');
      expect(parseConnection(`postgres://db/app?sslmode=${mode}`).form).toBe('url');
    }
  });

  describe('with a real PostgreSQL', () => {
    let server: PgServer;
    let store: EventStore;
    let host: DeliveryHost | undefined;
    beforeAll(async () => {
      server = await startPostgres();
    });
    afterAll(async () => {
      await server?.destroy();
    });
    beforeEach(async () => {
      store = await openStore();
    });
    afterEach(async () => {
      await host?.stop();
      host = undefined;
      await store.close();
    });

    it('delivers rows through a key=value connection string with a quoted password, shown masked', async () => {
      const url = new URL(await server.createDatabase());
      const pairs =
        `host=${url.hostname} port=${url.port} user=${decodeURIComponent(url.username)} ` +
        `password='not used by trust auth' dbname=${url.pathname.slice(1)}`;
      host = await startHost(store);
      await configurePlugin(store, 'postgres', { connection: pairs, ...FAST, max_attempts: 1 }, jane);
      await store.append(
        { aggregate_type: 'patient', aggregate_id: 'p-1', event_type: 'patient-added', payload: { a: '1' } },
        jane,
      );
      await caughtUp(store, 'postgres');
      const c = new pg.Client({ connectionString: url.toString() });
      await c.connect();
      try {
        expect((await c.query('SELECT id, a FROM patient')).rows).toEqual([{ id: 'p-1', a: '1' }]);
      } finally {
        await c.end();
      }
      const shown = JSON.stringify(await listPlugins(store)) + JSON.stringify(await store.auditLog());
      expect(shown).not.toContain('not used');
      expect(shown).toContain('password=***');
    });
  });
});
