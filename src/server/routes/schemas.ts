/** The schema feature of the server (routes and background work). */
import type { Feature } from '../features.js';

export const schemaFeature: Feature = { name: 'schema' };
