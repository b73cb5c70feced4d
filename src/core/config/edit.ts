import { MoaError } from '../util/errors';
import { readJsonObject } from '../util/json';
import { writeJsonAtomic } from '../util/atomic';
import { ROUTING_MODES, type RoutingMode } from './schema';

/** Changes routing.mode in the user's file, keeping every other key as they wrote it. */
export function setRoutingMode(file: string, mode: RoutingMode): void {
  if (!ROUTING_MODES.includes(mode)) throw new MoaError(`unknown routing mode "${mode}"`);
  const raw = readJsonObject(file);
  const routing = typeof raw['routing'] === 'object' && raw['routing'] !== null ? (raw['routing'] as Record<string, unknown>) : {};
  writeJsonAtomic(file, { ...raw, routing: { ...routing, mode } });
}
