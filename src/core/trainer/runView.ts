import type { WorkspaceLayout } from '../paths';
import { deviceLabel } from './device';
import type { TrainerEvent } from './events';
import { listRuns } from './runs';

/** One training step on a curve. */
export interface CurveStep {
  expert: string;
  stage: string;
  step: number;
  steps: number;
  loss: number;
  lr: number;
  tokensPerS: number;
  elapsedS: number;
}

/** One held-out evaluation on a curve. */
export interface CurveEval {
  stage: string;
  expert: string;
  step: number;
  loss: number;
}

/** A run as the dashboard draws it: status in words, device, trainer processes, every point. */
export interface RunView {
  runId: string | null;
  status: string;
  device: string | null;
  worldSize: number;
  steps: CurveStep[];
  evals: CurveEval[];
}

/** What one event changes in a RunView; the same for a live run and for a file being followed. */
export type RunUpdate =
  | { type: 'step'; step: CurveStep }
  | { type: 'eval'; eval: CurveEval }
  | { type: 'status'; status: string; device?: string | null; worldSize?: number };

/** Said of a run that another process writes (the CLI in a terminal, another machine). */
export const ELSEWHERE = 'running (elsewhere)';

const stepOf = (e: TrainerEvent & { type: 'step' }): CurveStep => ({ expert: e.expert, stage: e.stage, step: e.step, steps: e.steps, loss: e.loss, lr: e.lr, tokensPerS: e.tokens_per_s, elapsedS: e.elapsed_s });
const evalOf = (e: TrainerEvent & { type: 'eval' }): CurveEval => ({ stage: e.stage, expert: e.expert, step: e.step ?? 0, loss: e.loss });

/** `status` is what the run is while the event arrives (the live run's, or ELSEWHERE). */
export function runUpdate(e: TrainerEvent, status: string): RunUpdate | undefined {
  switch (e.type) {
    case 'step':
      return { type: 'step', step: stepOf(e) };
    case 'eval':
      return { type: 'eval', eval: evalOf(e) };
    case 'hello':
      return { type: 'status', status, device: deviceLabel(e) };
    case 'plan':
      return e.world_size ? { type: 'status', status, worldSize: e.world_size } : undefined;
    case 'done':
      return { type: 'status', status: e.stopped ? 'stopped' : 'done' };
    case 'error':
      return { type: 'status', status: 'failed' };
    default:
      return undefined;
  }
}

/** The newest run's id, or null when the workspace has none. */
export function latestRunId(layout: WorkspaceLayout): string | null {
  return listRuns(layout).pop() ?? null;
}

/** A run from its events; `status` when the caller knows it (live, or another process's), else from how it ended. */
export function viewOf(runId: string | null, events: readonly TrainerEvent[], status?: string): RunView {
  const hello = events.find((e): e is TrainerEvent & { type: 'hello' } => e.type === 'hello');
  const end = events.filter((e) => e.type === 'done' || e.type === 'error').pop();
  const ended = end ? runUpdate(end, '') : undefined;
  return {
    runId,
    status: status ?? (ended?.type === 'status' ? ended.status : events.length ? 'ended' : 'idle'),
    device: hello ? deviceLabel(hello) : null,
    worldSize: events.filter((e): e is TrainerEvent & { type: 'plan' } => e.type === 'plan').pop()?.world_size ?? 1,
    steps: events.filter((e): e is TrainerEvent & { type: 'step' } => e.type === 'step').map(stepOf),
    evals: events.filter((e): e is TrainerEvent & { type: 'eval' } => e.type === 'eval').map(evalOf),
  };
}
