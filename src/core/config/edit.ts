import { MoaError } from '../util/errors';
import { readJsonObject } from '../util/json';
import { writeJsonAtomic } from '../util/atomic';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { realPathOf } from '../data/notebooks';
import { suggestDomains } from '../domains/suggest';
import { ROUTING_MODES, type DomainConfig, type RoutingMode, type WeightType } from './schema';
import { WEIGHT_TYPES } from './table';

/** Sets one key of one section in the user's file, keeping every other key as they wrote it. */
function setSectionKey(file: string, section: string, key: string, value: unknown): void {
  const raw = readJsonObject(file);
  const old = typeof raw[section] === 'object' && raw[section] !== null ? (raw[section] as Record<string, unknown>) : {};
  writeJsonAtomic(file, { ...raw, [section]: { ...old, [key]: value } });
}

export function setRoutingMode(file: string, mode: RoutingMode): void {
  if (!ROUTING_MODES.includes(mode)) throw new MoaError(`unknown routing mode "${mode}"`);
  setSectionKey(file, 'routing', 'mode', mode);
}

/** The base's weight type in the exported graph (inference.weights). */
export function setInferenceWeights(file: string, weights: WeightType): void {
  if (!WEIGHT_TYPES.includes(weights)) throw new MoaError(`unknown weight type "${weights}"`, `Choose one of ${WEIGHT_TYPES.join(', ')}.`);
  setSectionKey(file, 'inference', 'weights', weights);
}

/**
 * Adds domains for files that match none (what "make a domain of these" does): one domain per
 * language among them, as `moa init` would suggest it, skipping names already taken. Returns the
 * domains added; the user's other keys are kept as written.
 */
export function addDomainsFor(file: string, root: string, relPaths: string[]): DomainConfig[] {
  const raw = readJsonObject(file);
  const existing = Array.isArray(raw['domains']) ? (raw['domains'] as unknown[]) : [];
  const taken = new Set(existing.map((d) => (typeof d === 'object' && d !== null ? (d as { name?: unknown }).name : undefined)));
  const samples = relPaths.map((relPath) => {
    try {
      return { relPath, size: statSync(join(root, realPathOf(relPath))).size };
    } catch {
      return { relPath, size: 0 };
    }
  });
  const added = suggestDomains(samples, { minFiles: 1, minBytes: 0 }).filter((d) => !taken.has(d.name));
  if (added.length === 0) throw new MoaError('none of these files has a language MoA can make a domain of', 'Add a domain with include globs to .moa/moa.json by hand.');
  writeJsonAtomic(file, { ...raw, domains: [...existing, ...added] });
  return added;
}
