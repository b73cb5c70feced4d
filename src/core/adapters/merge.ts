import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ProductLayout, WorkspaceLayout } from '../paths';
import type { BaseModelInfo } from '../models/base';
import { SAFE_NAME } from '../names';
import { MoaError, throwIfCancelled } from '../util/errors';
import { writeJsonAtomic } from '../util/atomic';
import { describeFailure, spawnTrainer } from '../trainer/process';
import { usableExperts } from './store';

/** peft's `add_weighted_adapter` combination types that `moa_trainer merge` implements (merge.py). */
export const MERGE_METHODS = ['linear', 'cat', 'svd', 'magnitude_prune', 'ties', 'dare_linear', 'dare_ties', 'ties_svd', 'dare_linear_svd', 'dare_ties_svd', 'magnitude_prune_svd'] as const;
export type MergeMethod = (typeof MERGE_METHODS)[number];
const NEEDS_DENSITY = new Set(['magnitude_prune', 'ties', 'dare_linear', 'dare_ties']);

export interface MergeRequest {
  name: string;
  experts: string[];
  method: MergeMethod;
  /** One per expert; default 1 each. */
  weights?: number[];
  density?: number;
  svdRank?: number;
  majority?: 'total' | 'frequency';
  seed?: number;
  force?: boolean;
}

/** The trainer's merge config for a request (pure; every rule a user can break is checked here, with a fix). */
export function mergeConfig(req: MergeRequest, expertDirs: Map<string, string>, outDir: string, baseName: string): Record<string, unknown> {
  if (!SAFE_NAME.test(req.name)) throw new MoaError(`"${req.name}" is not a valid expert name (lowercase letters, digits, "-", "_")`);
  if (req.experts.length < 2) throw new MoaError(`merging needs at least two experts, got ${req.experts.length}`, 'moa experts merge NEW A B [C…]');
  if (new Set(req.experts).size !== req.experts.length) throw new MoaError(`an expert is named twice in ${req.experts.join(', ')}`);
  if (req.experts.includes(req.name)) throw new MoaError(`"${req.name}" is one of the experts being merged`, 'Give the merged expert a new name.');
  for (const e of req.experts) if (!expertDirs.has(e)) throw new MoaError(`no usable expert "${e}"`, 'See "moa experts list".');
  if (!(MERGE_METHODS as readonly string[]).includes(req.method)) throw new MoaError(`unknown merge method "${req.method}"`, `Choose from ${MERGE_METHODS.join(', ')}.`);
  const weights = req.weights ?? req.experts.map(() => 1);
  if (weights.length !== req.experts.length || !weights.every(Number.isFinite)) throw new MoaError(`${weights.length} weights for ${req.experts.length} experts`, 'Give one number per expert: --weights 0.5,0.5');
  const base = req.method.replace(/_svd$/, '');
  if (NEEDS_DENSITY.has(base) && (req.density === undefined || req.density < 0 || req.density > 1)) {
    throw new MoaError(`method ${req.method} needs --density in [0, 1]`, '--density 0.5 keeps half of each expert\'s entries.');
  }
  return {
    v: 1,
    name: req.name,
    out_dir: outDir,
    method: req.method,
    weights,
    experts: req.experts.map((e) => ({ name: e, dir: expertDirs.get(e) })),
    base_model_name: baseName,
    majority_sign_method: req.majority ?? 'total',
    seed: req.seed ?? 0,
    ...(req.density !== undefined ? { density: req.density } : {}),
    ...(req.svdRank !== undefined ? { svd_rank: req.svdRank } : {}),
  };
}

/**
 * `moa experts merge`: a new expert made from existing ones by `moa_trainer merge` (peft's
 * semantics, checked against peft in trainer/tests/test_merge.py), published whole into
 * .moa/experts/NAME. Returns its folder.
 */
export async function mergeExperts(layout: WorkspaceLayout, product: ProductLayout, base: BaseModelInfo, python: string, req: MergeRequest, signal?: AbortSignal): Promise<string> {
  const dirs = new Map(usableExperts(layout.expertsDir).map((e) => [e.name, e.dir]));
  const out = join(layout.expertsDir, req.name);
  const config = mergeConfig(req, dirs, out, base.name);
  if (existsSync(out) && !req.force) throw new MoaError(`${out}: an expert named "${req.name}" exists`, `Add --force to replace it (the old one is kept for "moa experts rollback ${req.name}"), or choose another name.`);
  const configPath = join(layout.cacheDir, `merge-${req.name}.json`);
  writeJsonAtomic(configPath, config);
  const proc = spawnTrainer({ python, trainerDir: product.trainerDir, command: 'merge', configPath });
  const onAbort = () => proc.stop();
  signal?.addEventListener('abort', onAbort, { once: true });
  const exit = await proc.exited;
  signal?.removeEventListener('abort', onAbort);
  throwIfCancelled(signal, 'merge');
  if (!exit.done) throw new MoaError(`merging ${req.experts.join(', ')} failed: ${describeFailure(exit)}`);
  return out;
}
