/**
 * A staged transfer (stage a debit, stage a credit, commit) is safe to run again with the same event
 * ids, whether its commit happened or not: each event ends appended once, every command exits 0 and
 * says what it found. With no server (the CLI opens the store) and through a running server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Project, type RunningServer, project, startServer } from './helpers/cli.js';

for (const mode of ['no server', 'a running server'] as const) {
  describe(`CLI: staging again with the same --event-id, ${mode} (qa-retry #3, #5)`, () => {
    let p: Project;
    let server: RunningServer | undefined;

    beforeAll(async () => {
      p = await project();
      if (mode === 'a running server') server = await startServer(p);
    });
    afterAll(async () => {
      await server?.stop();
      await p?.cleanup();
    });

    /** `aggregate apply --stage` of one side of transfer `tr` (event id `<tr>-<side>`). */
    const stage = (tr: string, side: 'd' | 'c', extra: string[] = []) =>
      p.cli([
        'aggregate',
        'apply',
        '--stage',
        '--aggregate',
        'account',
        '--aggregate-id',
        `${side === 'd' ? 'src' : 'dst'}-${tr}`,
        '--event',
        side === 'd' ? 'debited' : 'credited',
        '--field',
        'amount=25',
        '--field',
        `ref=${tr}`,
        '--event-id',
        `${tr}-${side}`,
        ...extra,
      ]);
    const events = async (id: string) => {
      const r = await p.cli([
        'aggregate',
        'replay',
        '--aggregate',
        'account',
        '--aggregate-id',
        id,
        '--json',
      ]);
      expect(r.code).toBe(0);
      return JSON.parse(r.stdout).events as Array<{ version: number; metadata: { event_id: string } }>;
    };

    it('run again after its commit, a transfer stages nothing and appends nothing more (#3)', async () => {
      for (const r of [await stage('tr1', 'd'), await stage('tr1', 'c')]) expect(r.code).toBe(0);
      expect((await p.cli(['aggregate', 'commit'])).stdout).toMatch(/^committed 2 event\(s\) atomically/);

      // The same script again: its commit's outcome was lost. Before: EDBX_ERR_EVENT_ID_CONFLICT, exit 1,
      // "…there is nothing to stage; use a new event id", which posts the transfer twice if followed.
      const d = await stage('tr1', 'd');
      expect([d.code, d.stderr]).toEqual([0, '']);
      expect(d.stdout).toMatch(
        /^already appended: event id tr1-d is debited on account\/src-tr1 at version 1 \(position \d+\); nothing staged\n/,
      );
      const c = await stage('tr1', 'c', ['--json']);
      expect([c.code, c.stderr]).toEqual([0, '']);
      expect(JSON.parse(c.stdout)).toMatchObject({
        event: { aggregate_id: 'dst-tr1', version: 1, metadata: { event_id: 'tr1-c' } },
        duplicate: true,
        staged: null,
      });
      const commit = await p.cli(['aggregate', 'commit']);
      expect([commit.code, commit.stdout]).toEqual([0, 'nothing staged: nothing to commit\n']);
      expect((await events('src-tr1')).map((e) => e.metadata.event_id)).toEqual(['tr1-d']);
      expect((await events('dst-tr1')).map((e) => e.metadata.event_id)).toEqual(['tr1-c']);

      // Another event under the id is still refused, saying what differs, never "use a new event id".
      const changed = await stage('tr1', 'd', ['--field', 'note=x']);
      expect(changed.code).toBe(1);
      expect(changed.stderr).toMatch(
        /^error: event id "tr1-d" was already used by debited on account\/src-tr1, appended at version 1 \(position \d+\), which differs from this event in payload field "note"; nothing was staged: if this event retries that one, it is already appended; .*\[EDBX_ERR_EVENT_ID_CONFLICT\]\n$/,
      );
      expect(changed.stderr).not.toMatch(/use a new event id/);
      expect((await events('src-tr1')).length).toBe(1);
    });

    it('run again before its commit ran, a transfer is staged once and committed once (#5)', async () => {
      const first = await stage('tr2', 'd', ['--json']);
      expect(JSON.parse(first.stdout)).toMatchObject({
        staged: { request: { event_id: 'tr2-d' } },
        duplicate: false,
      });
      const seq = JSON.parse(first.stdout).staged.seq as number;
      expect((await stage('tr2', 'c')).code).toBe(0);

      // The script again (its commit never ran): the stage survived, and staging says so.
      // Before: EDBX_ERR_EVENT_ID_CONFLICT "…by an event already appended", which nothing was.
      const d = await stage('tr2', 'd');
      expect([d.code, d.stderr]).toEqual([0, '']);
      expect(d.stdout).toBe(
        `already staged: event id tr2-d is staged #${seq} debited on account/src-tr2; nothing staged again (run \`eventdbx aggregate commit\` to append)\n`,
      );
      const c = await stage('tr2', 'c', ['--json']);
      expect([c.code, c.stderr]).toEqual([0, '']);
      expect(JSON.parse(c.stdout)).toEqual({
        staged: expect.objectContaining({
          seq: seq + 1,
          request: expect.objectContaining({ event_id: 'tr2-c' }),
        }),
        duplicate: true,
      });

      // A different event under a staged id: the code HTTP gives the same id twice in one transaction.
      const changed = await stage('tr2', 'd', ['--expected-version', '0']);
      expect(changed.code).toBe(1);
      expect(changed.stderr).toMatch(
        new RegExp(
          `^error: event id "tr2-d" is already staged \\(#${seq}, debited on account/src-tr2\\), which differs from this event in expected version \\(none; this one: 0\\); nothing was staged: .*\\[EDBX_ERR_DUPLICATE_EVENT_ID\\]\\n$`,
        ),
      );

      const commit = await p.cli(['aggregate', 'commit']);
      expect(commit.code).toBe(0);
      expect(commit.stdout).toMatch(/^committed 2 event\(s\) atomically/);
      expect((await events('src-tr2')).map((e) => e.metadata.event_id)).toEqual(['tr2-d']);
      expect((await events('dst-tr2')).map((e) => e.metadata.event_id)).toEqual(['tr2-c']);
    });

    it('a stage whose events were all appended meanwhile (same ids) commits nothing, and says so', async () => {
      for (const r of [await stage('tr3', 'd'), await stage('tr3', 'c')]) expect(r.code).toBe(0);
      // The same events appended another way (an `apply` of the same ids, a transaction over HTTP).
      for (const [id, event, eid] of [
        ['src-tr3', 'debited', 'tr3-d'],
        ['dst-tr3', 'credited', 'tr3-c'],
      ] as const) {
        const r = await p.cli([
          ...['aggregate', 'apply', '--aggregate', 'account', '--aggregate-id', id, '--event', event],
          ...['--field', 'amount=25', '--field', 'ref=tr3', '--event-id', eid],
        ]);
        expect(r.code, r.stderr).toBe(0);
      }
      const commit = await p.cli(['aggregate', 'commit', '--json']);
      expect(commit.code, commit.stderr).toBe(0);
      // Before: "committed 2 event(s) atomically", though it wrote nothing.
      expect(JSON.parse(commit.stdout)).toMatchObject({
        duplicate: true,
        committed: [{ version: 1 }, { version: 1 }],
      });
      expect((await events('src-tr3')).length).toBe(1);
      expect((await p.cli(['aggregate', 'commit'])).stdout).toBe('nothing staged: nothing to commit\n');
    });

    it('a commit says it appended, not found, what it appended', async () => {
      expect((await stage('tr4', 'd')).code).toBe(0);
      const commit = await p.cli(['aggregate', 'commit']);
      expect(commit.stdout).toMatch(/^committed 1 event\(s\) atomically:\n  account\/src-tr4 v1 debited\n$/);
    });
  });
}
