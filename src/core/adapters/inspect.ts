import type { ExpertWeights } from './store';

/** Eigenvalues of a symmetric n×n matrix (row-major) by cyclic Jacobi rotations; n is a LoRA rank, so tiny. */
export function symmetricEigenvalues(m: Float64Array, n: number): number[] {
  const a = Float64Array.from(m);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q]! ** 2;
    if (off < 1e-22) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * n + q]! - a[p * n + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p]!;
          const akq = a[k * n + q]!;
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k]!;
          const aqk = a[q * n + k]!;
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
      }
    }
  }
  return Array.from({ length: n }, (_, i) => a[i * n + i]!);
}

/** Gram matrix X Xᵀ of the rows of X [rows, cols] (row-major). */
function gramRows(x: Float32Array, rows: number, cols: number): Float64Array {
  const g = new Float64Array(rows * rows);
  for (let i = 0; i < rows; i++) {
    for (let j = i; j < rows; j++) {
      let s = 0;
      for (let k = 0; k < cols; k++) s += x[i * cols + k]! * x[j * cols + k]!;
      g[i * rows + j] = s;
      g[j * rows + i] = s;
    }
  }
  return g;
}

/** Gram matrix Xᵀ X of the columns of X [rows, cols]. */
function gramCols(x: Float32Array, rows: number, cols: number): Float64Array {
  const g = new Float64Array(cols * cols);
  for (let k = 0; k < rows; k++) {
    for (let i = 0; i < cols; i++) {
      const xi = x[k * cols + i]!;
      if (xi === 0) continue;
      for (let j = 0; j < cols; j++) g[i * cols + j] += xi * x[k * cols + j]!;
    }
  }
  return g;
}

/** Lower-triangular L with L Lᵀ = G for an r×r PSD Gram matrix. */
function cholesky(g: Float64Array, n: number): Float64Array {
  // Cholesky with a small jitter: A may be rank-deficient (a fresh LoRA's A is full rank, a pruned one not).
  const l = new Float64Array(n * n);
  const jitter = 1e-12 * (1 + Math.max(...Array.from({ length: n }, (_, i) => g[i * n + i]!)));
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = g[i * n + j]! + (i === j ? jitter : 0);
      for (let k = 0; k < j; k++) s -= l[i * n + k]! * l[j * n + k]!;
      l[i * n + j] = i === j ? Math.sqrt(Math.max(s, 0)) : l[j * n + j]! > 0 ? s / l[j * n + j]! : 0;
    }
  }
  return l;
}

/**
 * Singular values of the update B·A without forming it: with A Aᵀ = L Lᵀ, the eigenvalues of
 * Lᵀ (BᵀB) L are the squared singular values of B·A. Everything stays r×r.
 */
export function loraSingularValues(A: Float32Array, B: Float32Array, r: number, inF: number, outF: number): number[] {
  const l = cholesky(gramRows(A, r, inF), r);
  const btb = gramCols(B, outF, r);
  const tmp = new Float64Array(r * r);
  const s = new Float64Array(r * r);
  for (let i = 0; i < r; i++) for (let j = 0; j < r; j++) {
    let v = 0;
    for (let k = 0; k < r; k++) v += btb[i * r + k]! * l[k * r + j]!;
    tmp[i * r + j] = v;
  }
  for (let i = 0; i < r; i++) for (let j = 0; j < r; j++) {
    let v = 0;
    for (let k = 0; k < r; k++) v += l[k * r + i]! * tmp[k * r + j]!;
    s[i * r + j] = v;
  }
  return symmetricEigenvalues(s, r).map((x) => Math.sqrt(Math.max(0, x))).sort((a, b) => b - a);
}

/** exp(entropy) of the normalised singular values: 1 when one direction dominates, r when all are equal. */
export function effectiveRank(sigma: number[]): number {
  const total = sigma.reduce((a, b) => a + b, 0);
  if (total <= 0) return 0;
  let h = 0;
  for (const s of sigma) if (s > 0) h -= (s / total) * Math.log(s / total);
  return Math.exp(h);
}

export interface ModuleStats {
  layer: number;
  module: string;
  /** ‖scaling · B A‖_F: how far this expert moves the projection. */
  norm: number;
  sigma: number[];
  effectiveRank: number;
}

export function expertStats(w: ExpertWeights): ModuleStats[] {
  const out: ModuleStats[] = [];
  for (const [module, mw] of w.modules) {
    mw.A.forEach((A, layer) => {
      const sigma = loraSingularValues(A, mw.B[layer]!, w.r, mw.inFeatures, mw.outFeatures).map((s) => s * w.scaling);
      out.push({ layer, module, norm: Math.sqrt(sigma.reduce((a, s) => a + s * s, 0)), sigma, effectiveRank: effectiveRank(sigma) });
    });
  }
  return out.sort((a, b) => a.layer - b.layer || a.module.localeCompare(b.module));
}

/** Cosine similarity of two experts' full updates, Σ⟨ΔW₁, ΔW₂⟩ / (‖ΔW₁‖‖ΔW₂‖), via r×r traces. */
export function updateCosine(a: ExpertWeights, b: ExpertWeights): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (const [m, wa] of a.modules) {
    const wb = b.modules.get(m);
    wa.A.forEach((Aa, l) => {
      const Ba = wa.B[l]!;
      na += expertStatsNormSq(Aa, Ba, a.r, wa.inFeatures, wa.outFeatures) * a.scaling ** 2;
      if (!wb) return;
      const Ab = wb.A[l]!;
      const Bb = wb.B[l]!;
      // ⟨Ba Aa, Bb Ab⟩ = trace(Aaᵀ Baᵀ Bb Ab) = Σ (Baᵀ Bb)[i,j] (Ab Aaᵀ)[j,i]
      let s = 0;
      for (let i = 0; i < a.r; i++) for (let j = 0; j < b.r; j++) {
        let bb = 0;
        for (let o = 0; o < wa.outFeatures; o++) bb += Ba[o * a.r + i]! * Bb[o * b.r + j]!;
        let aa = 0;
        for (let k = 0; k < wa.inFeatures; k++) aa += Ab[j * wa.inFeatures + k]! * Aa[i * wa.inFeatures + k]!;
        s += bb * aa;
      }
      dot += s * a.scaling * b.scaling;
    });
  }
  for (const [, wb] of b.modules) wb.A.forEach((Ab, l) => (nb += expertStatsNormSq(Ab, wb.B[l]!, b.r, wb.inFeatures, wb.outFeatures) * b.scaling ** 2));
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
}

function expertStatsNormSq(A: Float32Array, B: Float32Array, r: number, inF: number, outF: number): number {
  const aat = gramRows(A, r, inF);
  const btb = gramCols(B, outF, r);
  let s = 0;
  for (let i = 0; i < r * r; i++) s += aat[i]! * btb[i]!;
  return s;
}
