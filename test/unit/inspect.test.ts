import { test } from 'node:test';
import assert from 'node:assert/strict';
import { effectiveRank, expertStats, loraSingularValues, symmetricEigenvalues, updateCosine } from '../../src/core/adapters/inspect';
import type { ExpertWeights } from '../../src/core/adapters/store';

function rand(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) - 0.5);
}

/** Brute force: σ² are the eigenvalues of (BA)ᵀ(BA), computed on the full in×in matrix. */
function bruteSigma(A: Float32Array, B: Float32Array, r: number, inF: number, outF: number): number[] {
  const M = new Float64Array(outF * inF);
  for (let o = 0; o < outF; o++) for (let i = 0; i < inF; i++) for (let k = 0; k < r; k++) M[o * inF + i] += B[o * r + k]! * A[k * inF + i]!;
  const G = new Float64Array(inF * inF);
  for (let i = 0; i < inF; i++) for (let j = 0; j < inF; j++) for (let o = 0; o < outF; o++) G[i * inF + j] += M[o * inF + i]! * M[o * inF + j]!;
  return symmetricEigenvalues(G, inF).map((x) => Math.sqrt(Math.max(0, x))).sort((a, b) => b - a).slice(0, r);
}

test('singular values of B·A from r×r algebra match the full matrix', () => {
  const [r, inF, outF] = [3, 7, 5];
  const A = rand(r * inF, 1);
  const B = rand(outF * r, 2);
  const fast = loraSingularValues(A, B, r, inF, outF);
  const slow = bruteSigma(A, B, r, inF, outF);
  fast.forEach((s, i) => assert.ok(Math.abs(s - slow[i]!) < 1e-5, `${s} vs ${slow[i]}`));
  assert.deepEqual(loraSingularValues(A, new Float32Array(outF * r), r, inF, outF), [0, 0, 0], 'B = 0 (fresh LoRA) has no update');
});

test('effective rank is 1 for one direction and r for a flat spectrum', () => {
  assert.equal(effectiveRank([2, 0, 0]), 1);
  assert.ok(Math.abs(effectiveRank([1, 1, 1, 1]) - 4) < 1e-12);
});

test('expert stats and cosine similarity between experts', () => {
  const [r, d] = [2, 4];
  const mk = (seed: number, scale: number): ExpertWeights => ({
    name: `e${seed}`, r, scaling: scale,
    modules: new Map([['q_proj', { inFeatures: d, outFeatures: d, A: [rand(r * d, seed)], B: [rand(d * r, seed + 1)] }]]),
  });
  const e = mk(3, 2);
  const stats = expertStats(e);
  assert.equal(stats.length, 1);
  const sigma = bruteSigma(e.modules.get('q_proj')!.A[0]!, e.modules.get('q_proj')!.B[0]!, r, d, d).map((s) => s * 2);
  assert.ok(Math.abs(stats[0]!.norm - Math.hypot(...sigma)) < 1e-5);
  assert.ok(Math.abs(updateCosine(e, e) - 1) < 1e-9, 'an expert is parallel to itself');
  assert.ok(Math.abs(updateCosine(e, mk(3, 5)) - 1) < 1e-9, 'scaling does not change direction');
  const c = updateCosine(e, mk(11, 1));
  assert.ok(c > -1 && c < 1);
});
