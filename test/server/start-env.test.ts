/**
 * Bad environment overrides at start (QA qa2-ops item 8): `EVENTDBX_LOG_LEVEL` and `EVENTDBX_HOST` are
 * refused with EDBX_ERR_CONFIG_INVALID naming the variable, as the other EVENTDBX_* settings are (they
 * were EDBX_ERR_INTERNAL in the words of pino and getaddrinfo). Runs the built CLI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listenError } from '../../src/server/listen-address.js';
import { logLevel } from '../../src/server/daemon-files.js';
import { type Project, freePort, project, run } from '../helpers/cli.js';

describe('environment overrides checked at start (qa2-ops #8)', () => {
  let p: Project;
  beforeAll(async () => {
    p = await project();
  });
  afterAll(() => p?.cleanup());

  const start = async (env: Record<string, string>) =>
    run(['start', '--foreground', '--port', String(await freePort())], {
      cwd: p.dir,
      env: { ...p.env, ...env },
    });

  it('EVENTDBX_LOG_LEVEL=bogus is refused naming the variable and the levels', async () => {
    const r = await start({ EVENTDBX_LOG_LEVEL: 'bogus' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[EDBX_ERR_CONFIG_INVALID]');
    expect(r.stderr).toContain('EVENTDBX_LOG_LEVEL');
    expect(r.stderr).toContain('"bogus" is not a log level');
    expect(r.stderr).not.toContain('custom levels');
  });

  it('an EVENTDBX_HOST that is not an address of this machine is refused naming the variable', async () => {
    // TEST-NET-1 (RFC 5737): never an address of this machine.
    const r = await start({ EVENTDBX_HOST: '192.0.2.1' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[EDBX_ERR_CONFIG_INVALID]');
    expect(r.stderr).toContain('EVENTDBX_HOST');
    expect(r.stderr).toContain('not an address of this machine');
    expect(r.stderr).not.toContain('EDBX_ERR_INTERNAL');
  });

  it('maps a host name that does not resolve, and leaves other failures alone', () => {
    const notFound = Object.assign(new Error('getaddrinfo ENOTFOUND bogus.invalid'), { code: 'ENOTFOUND' });
    const e = listenError(notFound, 7070, 'bogus.invalid');
    expect(e.code).toBe('EDBX_ERR_CONFIG_INVALID');
    expect(e.message).toContain('EVENTDBX_HOST');
    expect(e.message).toContain('"bogus.invalid"');
    expect(listenError(Object.assign(new Error('x'), { code: 'EADDRINUSE' }), 7070, 'h').code).toBe(
      'EDBX_ERR_PORT_IN_USE',
    );
    expect(listenError(new Error('other'), 7070, 'h').code).toBe('EDBX_ERR_INTERNAL');
    expect(logLevel({})).toBe('info');
    expect(logLevel({ EVENTDBX_LOG_LEVEL: 'trace' })).toBe('trace');
  });
});
