import { readJsonObjectOr } from '../util/json';
import type { WorkspaceLayout } from '../paths';
import { listRuns, readRunEvents, runInfo, runStatus } from './runs';

export interface RunSummary {
  id: string;
  status: string;
  created?: string;
  durationS?: number;
  steps?: number;
  /** Last training loss per expert. */
  finalLoss: Record<string, number>;
}

/** A run as the Runs view and `moa` show it: status, duration and the last loss of each expert. */
export function summarizeRun(layout: WorkspaceLayout, id: string): RunSummary {
  const run = runInfo(layout, id);
  const meta = readJsonObjectOr(run.metaFile) ?? { status: 'unreadable' };
  const finalLoss: Record<string, number> = {};
  let elapsed: number | undefined;
  let steps: number | undefined;
  for (const e of readRunEvents(run.eventsFile)) {
    if (e.type === 'step') {
      finalLoss[e.expert] = e.loss;
      elapsed = e.elapsed_s;
      steps = e.step;
    } else if (e.type === 'done' && typeof e.elapsed_s === 'number') elapsed = e.elapsed_s;
  }
  const status = runStatus(layout, id, meta);
  return { id, status, created: typeof meta['created'] === 'string' ? (meta['created'] as string) : undefined, durationS: elapsed, steps, finalLoss };
}

export function summarizeRuns(layout: WorkspaceLayout, limit = 50): RunSummary[] {
  return listRuns(layout).reverse().slice(0, limit).map((id) => summarizeRun(layout, id));
}
