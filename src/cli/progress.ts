import type { StepEvent } from '../core/trainer/events';

/** Pure: one progress line for the latest step of each expert. */
export function progressLine(latest: Map<string, StepEvent>, width = 24): string {
  const any = [...latest.values()][0];
  if (!any) return '';
  const frac = Math.min(1, any.step / any.steps);
  const filled = Math.round(frac * width);
  const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
  const losses = [...latest.values()].map((s) => `${s.expert} ${s.loss.toFixed(3)}`).join('  ');
  const eta = any.step > 0 ? (any.elapsed_s / any.step) * (any.steps - any.step) : 0;
  return `[${any.stage}] ${bar} ${any.step}/${any.steps}  ${losses}  ${Math.round(any.tokens_per_s)} tok/s  ETA ${formatSeconds(eta)}`;
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  if (s < 60) return `${Math.round(s)}s`;
  return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
}

/** Redraws one line on a terminal; elsewhere (CI, pipes) prints a line every tenth of the run. */
export class ProgressPrinter {
  private readonly latest = new Map<string, StepEvent>();
  private lastDecile = -1;
  private stageStartS = 0;

  constructor(private readonly out: NodeJS.WriteStream) {}

  step(e: StepEvent): void {
    // A new stage (router, mixed) starts its own bar: the last stage's experts would hold it at 100%.
    // Its ETA counts from where it started, since the trainer's elapsed_s runs across stages.
    const prev = [...this.latest.values()][0];
    if (prev && prev.stage !== e.stage) {
      this.end();
      this.stageStartS += prev.elapsed_s;
      this.latest.clear();
      this.lastDecile = -1;
    }
    if (this.stageStartS) e = { ...e, elapsed_s: Math.max(0, e.elapsed_s - this.stageStartS) };
    this.latest.set(e.expert, e);
    const line = progressLine(this.latest);
    if (this.out.isTTY) {
      this.out.write(`\r\x1b[2K${line.slice(0, (this.out.columns ?? 120) - 1)}`);
      return;
    }
    const decile = Math.floor((e.step / e.steps) * 10);
    if (decile !== this.lastDecile && [...this.latest.values()].every((s) => s.step === e.step)) {
      this.lastDecile = decile;
      this.out.write(line + '\n');
    }
  }

  end(): void {
    if (this.out.isTTY && this.latest.size) this.out.write('\n');
  }
}
