/**
 * Log sink: one line per event through the server's logger at the configured level. Template
 * placeholders: `{aggregate}` (type), `{id}`, `{event}`, `{version}`, `{position}`, `{event_id}`.
 */
import type { EventRecord } from '../../core/event.js';
import type { DeliveryItem, LogSettings, PluginLogger, Sink } from '../types.js';

export const DEFAULT_TEMPLATE = 'aggregate={aggregate} id={id} event={event}';

export function renderTemplate(template: string, r: EventRecord): string {
  const values: Record<string, string> = {
    aggregate: r.aggregate_type,
    id: r.aggregate_id,
    event: r.event_type,
    version: String(r.version),
    position: String(r.position),
    event_id: r.metadata.event_id,
  };
  return template.replace(
    /\{(aggregate|id|event|version|position|event_id)\}/g,
    (_, k: string) => values[k]!,
  );
}

export class LogSink implements Sink {
  readonly needsState = false;
  readonly batchSize = 1000;

  constructor(
    private readonly settings: LogSettings,
    private readonly log: PluginLogger,
  ) {}

  async deliver(items: readonly DeliveryItem[]): Promise<void> {
    const write = this.log[this.settings.level];
    if (!write) return; // the logger has no such level: nothing to emit
    const template = this.settings.template ?? DEFAULT_TEMPLATE;
    for (const { record } of items) {
      write.call(this.log, { plugin: 'log', position: record.position }, renderTemplate(template, record));
    }
  }

  async close(): Promise<void> {}
}
