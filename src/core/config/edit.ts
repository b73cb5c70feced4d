import { readFileSync } from 'node:fs';
import { MoaError, errorMessage } from '../util/errors';
import { writeJsonAtomic } from '../util/atomic';
import { ROUTING_MODES, type RoutingMode } from './schema';

/** Changes routing.mode in the user's file, keeping every other key as they wrote it. */
export function setRoutingMode(file: string, mode: RoutingMode): void {
  if (!ROUTING_MODES.includes(mode)) throw new MoaError(`unknown routing mode "${mode}"`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new MoaError(`${file}: cannot update routing mode (${errorMessage(e)})`);
  }
  const routing = typeof raw['routing'] === 'object' && raw['routing'] !== null ? (raw['routing'] as Record<string, unknown>) : {};
  writeJsonAtomic(file, { ...raw, routing: { ...routing, mode } });
}
