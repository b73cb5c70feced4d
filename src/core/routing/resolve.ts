import type { MoaConfig } from '../config/schema';
import { compileDomains } from '../domains/classify';
import { KNOWN_LANGUAGES, languageOfPath } from '../domains/languages';
import { blockAtCursor, type EmbeddedBlock } from './cursor';

export interface RouteDecision {
  mode: MoaConfig['routing']['mode'];
  domain?: string;
  experts: { name: string; weight: number }[];
  /** Why this route, in words a user can read in a status bar or a terminal. */
  reason: string;
  /** The trained router will choose on the prompt; `experts` is filled in after it has. */
  byRouter?: boolean;
  /** The cursor is inside a block of another language (a fenced block, a SQL string). */
  block?: EmbeddedBlock;
  /** The router reads the prompt from this offset of the prefix on (the block's start), not all of it. */
  routeFrom?: number;
}

/** What routing needs to know besides the config: the file, the cursor's context, what is loaded. */
export interface RouteQuery {
  relPath: string;
  languageId?: string;
  /** The text before the cursor; without it the route is the file's (no block can be seen). */
  prefix?: string;
  /** Experts that load and are not detached. */
  attached: ReadonlySet<string>;
  pinned?: string | null;
  /** The experts of a trained router that can serve (whole, every expert attached); undefined when none. */
  router?: readonly string[];
}

/**
 * The one place a request's route is decided, for completions, the status bar and `moa route`:
 * - `off`: the base model; `pinned`: the pinned expert for every file;
 * - `label` (the paper's explicit routing): the file's domain selects its expert;
 * - `learned`: the trained router decides on the prompt (inside an embedded block, on the block);
 * - `auto`: inside an embedded block whose language is a domain's, that domain's expert; inside
 *   one whose language is no domain's, the router on the block; elsewhere the file's domain.
 * A file in no domain is routed by the router when one can serve, else served by the base model.
 * Modes that need what is missing (no router, nothing pinned) fall back to labels, saying so.
 */
export function resolveRoute(config: MoaConfig, q: RouteQuery): RouteDecision {
  const mode = config.routing.mode;
  if (mode === 'off') return { mode, experts: [], reason: 'routing is off: base model only' };
  if (mode === 'pinned' && q.pinned && q.attached.has(q.pinned)) {
    return { mode, experts: [{ name: q.pinned, weight: 1 }], reason: `pinned expert ${q.pinned} serves every file` };
  }
  const domains = compileDomains(config.domains);
  const block = q.prefix !== undefined && (mode === 'learned' || mode === 'auto') ? blockAtCursor(q.prefix, q.languageId ?? languageOfPath(q.relPath), KNOWN_LANGUAGES) : undefined;
  const where = block ? `inside ${describeBlock(block)}` : '';
  const byRouter = (why: string): RouteDecision => ({
    mode,
    experts: [],
    byRouter: true,
    ...(block ? { block, routeFrom: block.start } : {}),
    reason: `${why}the learned router chooses among ${q.router!.join(', ')} from ${block ? 'the block' : 'the prompt'}`,
  });
  if (mode === 'learned' && q.router) return byRouter(where ? `${where}: ` : '');
  if (mode === 'auto' && block) {
    const domain = block.language ? domains.domainOfLanguage(block.language) : undefined;
    if (domain && q.attached.has(domain)) return { mode, domain, block, experts: [{ name: domain, weight: 1 }], reason: `${where}: domain ${domain} → expert ${domain}` };
    if (q.router) return byRouter(`${where} (${domain ? `domain ${domain} has no attached expert` : 'no domain holds its language'}): `);
  }
  const domain = domains.domainOf(q.relPath, q.languageId);
  const note = mode === 'learned' ? ' (no usable router: train one and attach all its experts; using labels)' : mode === 'pinned' ? ' (nothing pinned; using labels)' : '';
  if (!domain) {
    // A file in no domain has no label to route by: the learned router decides, when one can.
    if (q.router) return byRouter(`${q.relPath} is in no domain: `);
    return { mode, experts: [], reason: `${q.relPath} is in no domain: base model${note}` };
  }
  if (!q.attached.has(domain)) return { mode, domain, experts: [], reason: `domain ${domain} has no attached expert: base model${note}` };
  return { mode, domain, experts: [{ name: domain, weight: 1 }], reason: `domain ${domain} → expert ${domain}${note}` };
}

export function describeBlock(b: EmbeddedBlock): string {
  return b.kind === 'fence' ? `a ${b.tag ? `\`\`\`${b.tag} ` : 'bare '}block (from line ${b.line})` : `a SQL string (from line ${b.line})`;
}
