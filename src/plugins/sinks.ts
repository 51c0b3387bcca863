/** The sink of each plugin kind. Drivers (pg, better-sqlite3) load lazily inside their sinks. */
import { CsvSink } from './csv/sink.js';
import { HttpSink } from './http/sink.js';
import { JsonSink } from './json/sink.js';
import { LogSink } from './log/sink.js';
import { PostgresSink } from './postgres/sink.js';
import { typeResolver } from './sql/rows.js';
import { SqliteSink } from './sqlite/sink.js';
import { TcpSink } from './tcp/sink.js';
import type { Mappings, PluginConfig, PluginLogger, Sink } from './types.js';

export interface SinkContext {
  readonly log: PluginLogger;
  readonly mappings: Mappings;
}

export function createSink(config: PluginConfig, ctx: SinkContext): Sink {
  switch (config.kind) {
    case 'postgres':
      return new PostgresSink(config.settings, config.delivery, typeResolver(ctx.mappings, 'postgres'));
    case 'sqlite':
      return new SqliteSink(config.settings, typeResolver(ctx.mappings, 'sqlite'));
    case 'csv':
      return new CsvSink(config.settings);
    case 'tcp':
      return new TcpSink(config.settings, config.delivery);
    case 'http':
      return new HttpSink(config.settings, config.delivery);
    case 'json':
      return new JsonSink(config.settings);
    case 'log':
      return new LogSink(config.settings, ctx.log);
  }
}
