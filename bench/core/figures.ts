// One figure of `npm run bench`'s table. Every bench keeps printing its own lines; it also hands
// its headline figures here, which appends them as JSON lines to the file `scripts/bench.mjs`
// names in MOA_BENCH_FIGURES (nothing when a bench is run on its own).
import { appendFileSync } from 'node:fs';

export interface Figure {
  /** Which bench measured it (the runner's name for it). */
  bench: string;
  /** What is measured, in words a reader of the table understands. */
  figure: string;
  ours: number;
  unit: string;
  /** What it is compared with, in words (another engine, a baseline of ours), if anything. */
  comparison?: string;
  theirs?: number;
  /** ours ÷ theirs (or the figure's own ratio, e.g. a share of time to first token). */
  ratio?: number;
  /** The target as written in the issue, e.g. "≥ 1.0×" or "< 50 ms". */
  target?: string;
  /** Whether the target is met; absent when the figure is reported without a target. */
  met?: boolean;
  note?: string;
}

/** True when the bench runs as `npm run bench -- --quick`: the smallest sizes that still run every path. */
export const quick = process.argv.includes('--quick');

export function figure(f: Figure): void {
  if (!Number.isFinite(f.ours)) throw new Error(`bench ${f.bench}: "${f.figure}" is not a number (${f.ours})`);
  const out = process.env['MOA_BENCH_FIGURES'];
  if (out) appendFileSync(out, JSON.stringify(f) + '\n');
}

/** A ratio target "≥ x": met when ours ÷ theirs ≥ x. */
export function atLeast(ratio: number, x: number): Pick<Figure, 'ratio' | 'target' | 'met'> {
  return { ratio, target: `≥ ${x}×`, met: ratio >= x };
}
