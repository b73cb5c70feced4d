import type { TrainerEvent } from '../trainer/events';
import { isFiniteNumber } from '../util/json';
import { getOrSet } from '../util/maps';
import type { Point } from './downsample';

export interface LossCurve {
  /** The expert that trained (`router` and `mixed` for those stages). */
  expert: string;
  /** Held-out curves are per domain; training curves have none. */
  domain?: string;
  heldOut: boolean;
  points: Point[];
}

export interface StageCurves {
  stage: string;
  /** Planned steps of the stage (from its `plan` event), else the last step seen. */
  steps: number;
  curves: LossCurve[];
}

export interface RouterResults {
  experts: string[];
  accuracy: Record<string, number | null>;
  confusion: Record<string, Record<string, number> | null>;
}

export interface RunFacts {
  device?: string;
  torch?: string;
  gpu?: string | null;
  elapsedS?: number;
  stopped?: boolean;
  plans: { stage: string; experts: string[]; steps: number; tokens?: number; paramsTrainable?: number }[];
  error?: string;
}

/** The loss curves of a run, one group per stage in the order the stages ran. */
export function lossCurves(events: TrainerEvent[]): StageCurves[] {
  const stages = new Map<string, { steps: number; lastStep: number; curves: Map<string, LossCurve> }>();
  const stageOf = (name: string) => getOrSet(stages, name, () => ({ steps: 0, lastStep: 0, curves: new Map() }));
  for (const e of events) {
    if (e.type === 'plan') stageOf(e.stage).steps = e.steps;
    else if (e.type === 'step') {
      const s = stageOf(e.stage);
      s.lastStep = Math.max(s.lastStep, e.step);
      if (!isFiniteNumber(e.loss)) continue;
      getOrSet(s.curves, `train\0${e.expert}`, () => ({ expert: e.expert, heldOut: false, points: [] })).points.push({ x: e.step, y: e.loss });
    } else if (e.type === 'eval') {
      const s = stageOf(e.stage);
      if (!isFiniteNumber(e.loss)) continue;
      // An eval without a step number belongs to the end of what the stage has trained so far.
      const x = isFiniteNumber(e.step) ? e.step : s.lastStep;
      getOrSet(s.curves, `held\0${e.expert}\0${e.domain}`, () => ({ expert: e.expert, domain: e.domain, heldOut: true, points: [] })).points.push({ x, y: e.loss });
    }
  }
  return [...stages].map(([stage, s]) => ({
    stage,
    steps: s.steps || s.lastStep,
    // A resumed run repeats steps after its checkpoint; drawing in step order keeps one line.
    curves: [...s.curves.values()].filter((c) => c.points.length).map((c) => ({ ...c, points: c.points.sort((a, b) => a.x - b.x) })),
  })).filter((s) => s.curves.length);
}

/** Stage 2's own held-out figures in a run: accuracy and the confusion row of each domain (last eval wins). */
export function routerResultsFromEvents(events: TrainerEvent[]): RouterResults | undefined {
  const accuracy: Record<string, number | null> = {};
  const confusion: Record<string, Record<string, number> | null> = {};
  const experts = new Set<string>();
  let seen = false;
  for (const e of events) {
    if (e.type === 'plan' && e.stage === 'router') e.experts.forEach((x) => typeof x === 'string' && experts.add(x));
    if (e.type !== 'eval' || e.stage !== 'router') continue;
    const extra = e as unknown as { router_accuracy?: unknown; routed_to?: unknown };
    seen = true;
    accuracy[e.domain] = isFiniteNumber(extra.router_accuracy) ? extra.router_accuracy : null;
    const row = extra.routed_to;
    if (row && typeof row === 'object' && !Array.isArray(row)) {
      const clean: Record<string, number> = {};
      for (const [k, v] of Object.entries(row)) if (isFiniteNumber(v)) (clean[k] = v), experts.add(k);
      confusion[e.domain] = clean;
    } else confusion[e.domain] = null;
  }
  return seen ? { experts: [...experts], accuracy, confusion } : undefined;
}

/** What a run's events say about where and how it ran. */
export function runFacts(events: TrainerEvent[]): RunFacts {
  const facts: RunFacts = { plans: [] };
  for (const e of events) {
    if (e.type === 'hello') Object.assign(facts, { device: e.device, torch: e.torch, gpu: e.gpu });
    else if (e.type === 'plan') facts.plans.push({ stage: e.stage, experts: e.experts.filter((x): x is string => typeof x === 'string'), steps: e.steps, tokens: e.tokens, paramsTrainable: e.params_trainable });
    else if (e.type === 'step') facts.elapsedS = e.elapsed_s;
    else if (e.type === 'done') {
      facts.stopped = e.stopped;
      if (isFiniteNumber(e.elapsed_s)) facts.elapsedS = e.elapsed_s;
    } else if (e.type === 'error') facts.error = e.message;
  }
  return facts;
}
