/** `eventdbx schema …` command table (flags exactly as the spec, plus `show --history`). */
import { type CommandSpec, type Flag, WINDOW_FLAGS } from '../spec.js';

const AGGREGATE: Flag = { flags: '--aggregate <name>', help: 'aggregate type, e.g. patient', required: true };
const EVENTS: Flag = {
  flags: '--events <event1,event2,...>',
  help: 'comma-separated event types, e.g. patient-added,patient-updated',
  required: true,
};
const THRESHOLD: Flag = {
  flags: '--snapshot-threshold <u64>',
  help: 'take a snapshot automatically every n events (0 = off)',
};

export const SCHEMA_COMMANDS: CommandSpec[] = [
  {
    name: 'create',
    op: 'schema.create',
    help: 'create the schema of an aggregate type (refused if it has one)',
    flags: [AGGREGATE, EVENTS, THRESHOLD],
  },
  {
    name: 'add',
    op: 'schema.add',
    help: 'declare more events in a schema',
    flags: [AGGREGATE, EVENTS],
  },
  {
    name: 'alter',
    op: 'schema.alter',
    help: "change a schema: an event's fields (--event with --add/--remove), locks, snapshot threshold",
    args: [{ name: 'aggregate', required: true }],
    flags: [
      { flags: '--event <name>', help: 'the event whose fields --add/--remove edit' },
      THRESHOLD,
      {
        flags: '--lock <true|false>',
        help: 'lock the aggregate type (no appends at all), or with --field one field (no event may set it)',
      },
      { flags: '--field <name>', help: 'the field that --lock locks or unlocks' },
      {
        flags: '--add <field1,field2,...>',
        help: 'fields the event may set (an event without declared fields accepts any field)',
      },
      { flags: '--remove <field1,field2,...>', help: 'fields the event may no longer set' },
    ],
  },
  {
    name: 'remove',
    op: 'schema.remove',
    help: 'stop accepting an event (a schema keeps at least one event)',
    flags: [AGGREGATE, { flags: '--event <name>', help: 'the event to remove', required: true }],
  },
  {
    name: 'list',
    op: 'schema.list',
    help: 'list the schemas',
    flags: WINDOW_FLAGS,
  },
  {
    name: 'show',
    op: 'schema.show',
    help: 'show the schema of an aggregate type',
    flags: [AGGREGATE, { flags: '--history', help: 'also list every earlier version of the schema' }],
  },
];
