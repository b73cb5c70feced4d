import { MoaError } from '../util/errors';
import type { ExpertWeights } from '../adapters/store';
import type { OnnxModelInfo } from './modelInfo';

/** The LoRA graph inputs for a set of experts: `lora.{m}.A` [L,E,R,in], `lora.{m}.B` [L,E,out,R]. */
export interface ExpertStack {
  names: string[];
  rank: number;
  modules: Map<string, { A: Float32Array; B: Float32Array; dimsA: number[]; dimsB: number[] }>;
}

/**
 * Stacks experts along a new axis, zero-padding smaller ranks to the largest (exact: the padded rows
 * and columns contribute nothing) and folding each expert's scaling into B. With no expert, one
 * all-zero expert of rank 1 stands in, so the graph's shapes stay valid.
 */
export function stackExperts(info: OnnxModelInfo, experts: ExpertWeights[]): ExpertStack {
  for (const ex of experts) {
    const missing = [...ex.modules.keys()].filter((m) => !info.targetModules.includes(m));
    // Never drop part of an expert: that would be a silently different model.
    if (missing.length) throw new MoaError(`expert ${ex.name} targets ${missing.join(', ')}, which this ONNX graph takes no LoRA input for (${info.targetModules.join(', ')})`, 'Export the graph with the expert\'s targets (graphTargets); MoA does this when it loads the experts.');
  }
  const E = Math.max(1, experts.length);
  const R = Math.max(1, ...experts.map((e) => e.r));
  const L = info.numLayers;
  const modules: ExpertStack['modules'] = new Map();
  for (const m of info.targetModules) {
    const { in: inF, out: outF } = info.modules[m]!;
    const A = new Float32Array(L * E * R * inF);
    const B = new Float32Array(L * E * outF * R);
    experts.forEach((ex, e) => {
      const w = ex.modules.get(m);
      if (!w) return;
      for (let l = 0; l < L; l++) {
        A.set(w.A[l]!, ((l * E + e) * R) * inF);
        const src = w.B[l]!;
        const base = (l * E + e) * outF * R;
        for (let o = 0; o < outF; o++) {
          for (let k = 0; k < ex.r; k++) B[base + o * R + k] = src[o * ex.r + k]! * ex.scaling;
        }
      }
    });
    modules.set(m, { A, B, dimsA: [L, E, R, inF], dimsB: [L, E, outF, R] });
  }
  return { names: experts.map((e) => e.name), rank: R, modules };
}
