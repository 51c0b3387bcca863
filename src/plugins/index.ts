/** Plugins: durable delivery of committed events to external systems. */
export { configurePlugin, mapField, removePlugin, replayPlugin, retryPlugin } from './admin.js';
export { type PluginStatus, type PluginView, deadLetters, listPlugins, pluginStatus } from './views.js';
export { DeliveryHost, type HostOptions } from './host.js';
export { hostFor } from './registry.js';
export { type PluginInput, maskSecrets } from './settings.js';
export { DATATYPE_NAMES, parseDataType } from './sql/datatypes.js';
export * from './types.js';
