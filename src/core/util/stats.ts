/** The p-quantile of a sample (the element at floor(p·n) once sorted); 0 for an empty one. */
export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))]! : 0;
}
