/** The plugin feature of the server (routes and background work). */
import type { Feature } from '../features.js';

export const pluginFeature: Feature = { name: 'plugin' };
