/** The stream feature of the server (routes and background work). */
import type { Feature } from '../features.js';

export const streamFeature: Feature = { name: 'stream' };
