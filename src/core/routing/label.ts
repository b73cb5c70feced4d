import type { MoaConfig } from '../config/schema';
import { compileDomains } from '../domains/classify';

export interface RouteDecision {
  mode: MoaConfig['routing']['mode'];
  domain?: string;
  experts: { name: string; weight: number }[];
  /** Why this route, in words a user can read in a status bar or a terminal. */
  reason: string;
  /** The trained router will choose on the prompt (per layer); `experts` is filled in after it has. */
  byRouter?: boolean;
}

/**
 * Routing without the learned router: `off` is the base model; `pinned` is the pinned expert for
 * every file; `label` (the paper's explicit strategy) lets the file's domain select its expert.
 * A file in no domain, or whose expert is missing or detached, gets the base model. `learned`
 * comes here only when no usable router exists, and falls back to labels, saying so.
 */
export function routeByLabel(config: MoaConfig, relPath: string, available: Set<string>, languageId?: string, pinned: string | null = null): RouteDecision {
  const mode = config.routing.mode;
  if (mode === 'off') return { mode, experts: [], reason: 'routing is off: base model only' };
  if (mode === 'pinned' && pinned && available.has(pinned)) {
    return { mode, experts: [{ name: pinned, weight: 1 }], reason: `pinned expert ${pinned} serves every file` };
  }
  const domain = compileDomains(config.domains).domainOf(relPath, languageId);
  const note = mode === 'label' ? '' : mode === 'pinned' ? ' (nothing pinned; using labels)' : ' (no usable router: train one and attach all its experts; using labels)';
  if (!domain) return { mode, experts: [], reason: `${relPath} is in no domain: base model${note}` };
  if (!available.has(domain)) return { mode, domain, experts: [], reason: `domain ${domain} has no attached expert: base model${note}` };
  return { mode, domain, experts: [{ name: domain, weight: 1 }], reason: `domain ${domain} → expert ${domain}${note}` };
}
