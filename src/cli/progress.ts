import type { ExpertDoneEvent, StepEvent } from '../core/trainer/events';

/**
 * Pure: one progress line for the latest step of each expert, at most `columns` wide. What a
 * user waits on comes first (the ETA, then the rate), then the bar, then the losses, collapsed
 * to their mean when they do not fit.
 */
export function progressLine(latest: Map<string, StepEvent>, columns = 120, width = 20): string {
  const all = [...latest.values()];
  const any = all.reduce<StepEvent | undefined>((a, b) => (!a || b.step > a.step ? b : a), undefined);
  if (!any) return '';
  const frac = Math.min(1, any.step / any.steps);
  const filled = Math.round(frac * width);
  const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
  const eta = any.eta_s ?? (any.step > 0 ? (any.elapsed_s / any.step) * (any.steps - any.step) : NaN);
  const head = `[${any.stage}] ETA ${formatSeconds(eta)} · ${Math.round(any.tokens_per_s)} tok/s · ${bar} ${any.step}/${any.steps}`;
  const losses = all.map((s) => `${s.expert} ${s.loss.toFixed(3)}`).join('  ');
  if (head.length + 2 + losses.length <= columns - 1) return `${head}  ${losses}`;
  const finite = all.map((s) => s.loss).filter(Number.isFinite);
  const mean = finite.reduce((a, b) => a + b, 0) / Math.max(1, finite.length);
  const short = `${all.length} experts, mean loss ${mean.toFixed(3)}`;
  return head.length + 2 + short.length <= columns - 1 ? `${head}  ${short}` : head.slice(0, columns - 1);
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
    const line = progressLine(this.latest, this.out.columns ?? 120);
    if (this.out.isTTY) {
      this.out.write(`\r\x1b[2K${line}`);
      return;
    }
    const decile = Math.floor((e.step / e.steps) * 10);
    if (decile !== this.lastDecile && [...this.latest.values()].every((s) => s.step === e.step)) {
      this.lastDecile = decile;
      this.out.write(line + '\n');
    }
  }

  /** An expert stopped before the end of its stage: said on its own line, and it leaves the bar. */
  expertDone(e: ExpertDoneEvent): void {
    this.end();
    this.latest.delete(e.expert);
    this.out.write(`${e.expert}: stopped at step ${e.step}: ${e.reason}\n`);
  }

  end(): void {
    if (this.out.isTTY && this.latest.size) this.out.write('\n');
  }
}
