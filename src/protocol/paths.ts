/** Paths of the REST API. Path segments are percent-encoded, so ids with any character route safely. */

const seg = encodeURIComponent;

export const PATHS = {
  health: '/health',
  metrics: '/metrics',
  openapi: '/openapi.json',
  aggregates: '/v1/aggregates',
  aggregate: (type: string, id: string) => `/v1/aggregates/${seg(type)}/${seg(id)}`,
  events: (type: string, id: string) => `/v1/aggregates/${seg(type)}/${seg(id)}/events`,
  recent: (type: string, id: string) => `/v1/aggregates/${seg(type)}/${seg(id)}/events/recent`,
  event: (type: string, id: string, version: number) =>
    `/v1/aggregates/${seg(type)}/${seg(id)}/events/${version}`,
  eventProof: (type: string, id: string, version: number) =>
    `/v1/aggregates/${seg(type)}/${seg(id)}/events/${version}/proof`,
  consistency: (type: string, id: string) => `/v1/aggregates/${seg(type)}/${seg(id)}/consistency`,
  verify: (type: string, id: string) => `/v1/aggregates/${seg(type)}/${seg(id)}/verify`,
  transactions: '/v1/transactions',
  schemas: '/v1/schemas',
  schema: (aggregate: string) => `/v1/schemas/${seg(aggregate)}`,
  schemaHistory: (aggregate: string) => `/v1/schemas/${seg(aggregate)}/history`,
  schemaEvents: (aggregate: string) => `/v1/schemas/${seg(aggregate)}/events`,
  schemaEvent: (aggregate: string, event: string) => `/v1/schemas/${seg(aggregate)}/events/${seg(event)}`,
  tokens: '/v1/tokens',
  tokenAction: (id: string, action: 'revoke' | 'refresh') => `/v1/tokens/${seg(id)}/${action}`,
  audit: '/v1/audit',
  auditVerify: '/v1/audit/verify',
  checkpoint: '/v1/checkpoint',
  ledgerConsistency: '/v1/ledger/consistency',
  ledgerProof: '/v1/ledger/proof',
  stream: '/v1/events/stream',
  plugins: '/v1/plugins',
  pluginStatus: '/v1/plugins/status',
  pluginDeadLetters: (name: string) => `/v1/plugins/${seg(name)}/dead-letters`,
  pluginAction: (name: string, action: 'replay' | 'retry') => `/v1/plugins/${seg(name)}/${action}`,
} as const;
