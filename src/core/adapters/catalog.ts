import { readManifest } from '../data/shards';
import type { WorkspaceLayout } from '../paths';
import { readExpertState } from './state';
import { listExperts, type ExpertSummary } from './store';

/** How an expert takes part in routing, or why it cannot. */
export type ExpertStatus = 'attached' | 'detached' | 'pinned' | 'broken';
export type Freshness = 'fresh' | 'stale' | 'unknown';

export type CatalogEntry = ExpertSummary & {
  state: ExpertStatus;
  freshness: Freshness;
  /** Why it is stale: its domain's data changed, or it was trained on another base model. */
  staleBecause?: 'data' | 'base';
};

export interface Catalog {
  experts: CatalogEntry[];
  /** state.json exists but could not be used (the states above are then the defaults). */
  problem?: string;
}

/**
 * An expert is stale when it was trained on another base than `baseModel` (it does not belong to
 * that model, whatever its data) or when its domain's data changed since (fingerprints differ).
 */
export function expertFreshness(expert: Pick<ExpertSummary, 'meta'> | undefined, datasetFingerprint: string | undefined, baseModel?: string): { freshness: Freshness; staleBecause?: 'data' | 'base' } {
  if (baseModel && typeof expert?.meta.base_model === 'string' && expert.meta.base_model !== baseModel) return { freshness: 'stale', staleBecause: 'base' };
  if (!expert?.meta.fingerprint || !datasetFingerprint) return { freshness: 'unknown' };
  return expert.meta.fingerprint === datasetFingerprint ? { freshness: 'fresh' } : { freshness: 'stale', staleBecause: 'data' };
}

/**
 * Every expert of the workspace with its status, from the adapter folders, state.json and the
 * dataset manifest: the one answer the CLI's list, the tree and the base-model change format.
 * `baseModel` undefined judges freshness by data alone (no readable config).
 */
export function expertCatalog(layout: WorkspaceLayout, baseModel: string | undefined): Catalog {
  const state = readExpertState(layout);
  const manifest = readManifest(layout);
  const experts = listExperts(layout.expertsDir).map((e): CatalogEntry => {
    const fingerprint = manifest?.domains.find((d) => d.domain === e.name)?.fingerprint;
    const status: ExpertStatus = e.status === 'broken' ? 'broken' : state.pinned === e.name ? 'pinned' : state.detached.includes(e.name) ? 'detached' : 'attached';
    return { ...e, state: status, ...expertFreshness(e, fingerprint, baseModel) };
  });
  return state.problem ? { experts, problem: state.problem } : { experts };
}

/** The working experts that `baseModel` would leave stale: trained on another base. */
export function staleForBase(layout: WorkspaceLayout, baseModel: string): string[] {
  return expertCatalog(layout, baseModel).experts.filter((e) => e.state !== 'broken' && e.staleBecause === 'base').map((e) => e.name);
}
