import { MoaError } from '../util/errors';
import { readJsonObject } from '../util/json';
import { writeJsonAtomic } from '../util/atomic';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { realPathOf } from '../data/notebooks';
import { suggestDomains } from '../domains/suggest';
import { ROUTING_MODES, type DomainConfig, type RoutingMode } from './schema';

/** Changes routing.mode in the user's file, keeping every other key as they wrote it. */
export function setRoutingMode(file: string, mode: RoutingMode): void {
  if (!ROUTING_MODES.includes(mode)) throw new MoaError(`unknown routing mode "${mode}"`);
  const raw = readJsonObject(file);
  const routing = typeof raw['routing'] === 'object' && raw['routing'] !== null ? (raw['routing'] as Record<string, unknown>) : {};
  writeJsonAtomic(file, { ...raw, routing: { ...routing, mode } });
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
