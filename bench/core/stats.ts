/** The q-quantile of a sample (the element at floor(q·n) once sorted); what every bench here reports. */
export function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

export const median = (xs: number[]): number => quantile(xs, 0.5);
