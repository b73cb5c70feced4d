import type { MoaConfig } from '../config/schema';
import { compileDomains } from '../domains/classify';

export interface RouteDecision {
  mode: MoaConfig['routing']['mode'];
  domain?: string;
  experts: { name: string; weight: number }[];
  /** Why this route, in words a user can read in a status bar or a terminal. */
  reason: string;
}

/**
 * Label routing (the paper's explicit strategy): the file's domain selects its expert. A file in no
 * domain, or a domain without a usable expert, gets the base model. `learned` and `pinned` arrive
 * with the router; until then they fall back to labels and say so.
 */
export function routeByLabel(config: MoaConfig, relPath: string, available: Set<string>, languageId?: string): RouteDecision {
  const mode = config.routing.mode;
  if (mode === 'off') return { mode, experts: [], reason: 'routing is off: base model only' };
  const domain = compileDomains(config.domains).domainOf(relPath, languageId);
  const note = mode === 'label' ? '' : ` (${mode} routing is not available yet; using labels)`;
  if (!domain) return { mode, experts: [], reason: `${relPath} is in no domain: base model${note}` };
  if (!available.has(domain)) return { mode, domain, experts: [], reason: `domain ${domain} has no trained expert: base model${note}` };
  return { mode, domain, experts: [{ name: domain, weight: 1 }], reason: `domain ${domain} → expert ${domain}${note}` };
}
