import { join } from 'node:path';
import type { MoaConfig } from '../config/schema';
import { readManifest } from '../data/shards';
import { configuredBase } from '../models/base';
import type { ProductLayout, WorkspaceLayout } from '../paths';
import { listRuns, readRunEvents, runInfo } from '../trainer/runs';
import { MoaError } from '../util/errors';
import type { EvalReport } from '../eval/evaluate';
import { readEvalReport } from '../eval/evalFile';
import { expertStats, updateCosine, type ModuleStats } from './inspect';
import { loadExpertWeights, usableExperts, type ExpertWeights } from './store';
import { readRouterInfo } from './router';

export interface ExpertInspection {
  expert: string;
  r: number;
  alpha: number;
  targetModules: string[];
  parameters: number;
  sizeBytes: number;
  meta: Record<string, unknown>;
  data: { files: number; bytes: number; trainTokens: number; valTokens: number } | null;
  stats: ModuleStats[];
  curve: { step: number; loss: number }[];
  similarity: { experts: string[]; matrix: number[][] };
  /** The domain × expert held-out loss matrix from the last `moa eval`, if one ran. */
  evalMatrix: { domains: string[]; experts: string[]; values: number[][] } | null;
  /** From `moa eval --completions`: completions on this expert's domain, per way of serving. */
  completions: { column: string; exact: number; editSimilarity: number; acceptedChars: number; targetChars: number; servedByOwnExpert: number; firstTokenP50Ms: number; p50Ms: number; p95Ms: number }[] | null;
  /** The router's confusion matrix on held-out data: domain (rows) → routed expert (columns). */
  routerConfusion: { domains: string[]; experts: string[]; values: number[][] } | null;
}

function readConfusion(layout: WorkspaceLayout): ExpertInspection['routerConfusion'] {
  const info = readRouterInfo(layout.routerDir);
  if (!info || info.status !== 'ok') return null;
  const domains = Object.keys(info.confusion).filter((d) => info.confusion[d]);
  if (domains.length === 0) return null;
  return { domains, experts: info.experts, values: domains.map((d) => info.experts.map((e) => info.confusion[d]![e] ?? 0)) };
}

function readEval(layout: WorkspaceLayout): EvalReport | undefined {
  try {
    return readEvalReport(join(layout.moaDir, 'eval.json'));
  } catch {
    return undefined; // no evaluation yet, or one this version cannot read: the inspector leaves its parts out
  }
}

function evalMatrix(r: EvalReport | undefined): ExpertInspection['evalMatrix'] {
  if (!r) return null;
  const values = r.domains.map((d) => r.experts.map((e) => r.matrix[d]?.[e] ?? Number.NaN));
  return { domains: r.domains, experts: r.experts, values };
}

function completionsOf(r: EvalReport | undefined, domain: string): ExpertInspection['completions'] {
  const row = r?.completions?.rows[domain];
  if (!row) return null;
  return r!.completions!.columns.flatMap((column) => {
    const s = row[column];
    return s ? [{ column: column === 'label' ? 'label (this expert)' : column, exact: s.exact, editSimilarity: s.editSimilarity, acceptedChars: s.acceptedChars, targetChars: s.targetChars, servedByOwnExpert: s.servedByOwnExpert, firstTokenP50Ms: s.firstTokenP50Ms, p50Ms: s.p50Ms, p95Ms: s.p95Ms }] : [];
  });
}

/** Everything the inspector shows for one expert, and how it relates to the others. */
export function inspectExpert(layout: WorkspaceLayout, product: ProductLayout, config: MoaConfig, name: string): ExpertInspection {
  const experts = usableExperts(layout.expertsDir);
  const summary = experts.find((e) => e.name === name);
  if (!summary) throw new MoaError(`${join(layout.expertsDir, name)}: no usable expert "${name}"`);
  const base = configuredBase(config.baseModel, product, layout.root);
  const loaded = new Map<string, ExpertWeights>(experts.map((e) => [e.name, loadExpertWeights(e.dir, e.name, base)]));
  const w = loaded.get(name)!;
  const stats = readManifest(layout)?.domains.find((d) => d.domain === name);
  const names = [...loaded.keys()];
  const report = readEval(layout);
  const matrix = names.map((a) => names.map((b) => (a === b ? 1 : updateCosine(loaded.get(a)!, loaded.get(b)!))));
  return {
    expert: name,
    r: w.r,
    alpha: summary.alpha ?? w.r,
    targetModules: summary.targetModules ?? [],
    // Counted from the header's shapes: the same matrices loadExpertWeights just checked and read.
    parameters: summary.parameters ?? 0,
    sizeBytes: summary.sizeBytes ?? 0,
    meta: summary.meta as Record<string, unknown>,
    data: stats ? { files: stats.files, bytes: stats.bytes, trainTokens: stats.trainTokens, valTokens: stats.valTokens } : null,
    stats: expertStats(w),
    curve: trainingCurve(layout, name, summary.meta.run_id),
    similarity: { experts: names, matrix },
    evalMatrix: evalMatrix(report),
    completions: completionsOf(report, name),
    routerConfusion: readConfusion(layout),
  };
}

/** The expert's stage-1 loss curve from the run that wrote it (or the latest run that trained it). */
function trainingCurve(layout: WorkspaceLayout, name: string, runId: string | undefined): { step: number; loss: number }[] {
  const runs = runId ? [runId] : listRuns(layout).reverse();
  for (const run of runs) {
    const points = readRunEvents(runInfo(layout, run).eventsFile).flatMap((e) => (e.type === 'step' && e.expert === name ? [{ step: e.step, loss: e.loss }] : []));
    if (points.length) return points;
  }
  return [];
}
