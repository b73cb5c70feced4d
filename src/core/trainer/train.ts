import { detectFim, type FimTokens } from '../inference/prompt';
import { loadTokenizer } from '../tokenizer/load';
import { join } from 'node:path';
import type { MoaConfig } from '../config/schema';
import type { DatasetManifest } from '../data/shards';
import type { ProductLayout, WorkspaceLayout } from '../paths';
import { MoaError, errorMessage } from '../util/errors';
import { removeStaleTemps, writeJsonAtomic } from '../util/atomic';
import { readJsonObject } from '../util/json';
import { keptPrevious, type TrainerEvent } from './events';
import { describeFailure, spawnTrainer, succeeded, type DistLaunch, type TrainerExit } from './process';
import { acquireRunLock, appendEvent, createRun, finishRun, hasCheckpoint, newRunId, runStatus, trainConfigPath, updateRun, type RunInfo, type RunLock } from './runs';

export interface TrainRequest {
  layout: WorkspaceLayout;
  product: ProductLayout;
  config: MoaConfig;
  manifest: DatasetManifest;
  baseModelDir: string;
  python: string;
  /** Overrides config.training.steps. */
  steps?: number;
  /** Only these domains (default: all with data). */
  domains?: string[];
  /** Stages to run, in the trainer's order experts → router → mixed (default: experts, router). */
  stages?: TrainStage[];
  /** Overrides config.router.steps. */
  routerSteps?: number;
  /** A stop publishes the partly trained experts instead of keeping the previous ones. */
  keepPartial?: boolean;
  /** Overrides config.training.minutes (0: no time budget). */
  minutes?: number;
  /** Several trainer processes through torchrun (`moa train --nproc-per-node`). */
  processes?: DistLaunch;
  /** The base model's FIM sentinel ids; found from its tokenizer when absent (null: it has none). */
  fim?: Pick<FimTokens, 'prefix' | 'suffix' | 'middle'> | null;
  device?: string;
  onEvent?: (e: TrainerEvent) => void;
  onLog?: (line: string) => void;
}

export type TrainStage = 'experts' | 'router' | 'mixed';
export const TRAIN_STAGES: readonly TrainStage[] = ['experts', 'router', 'mixed'];

/** The method's default: stage 1 (experts), then stage 2 (router) when there is more than one expert. */
export function defaultStages(domainCount: number): TrainStage[] {
  return domainCount > 1 ? ['experts', 'router'] : ['experts'];
}

export interface TrainingSession {
  run: RunInfo;
  stop(): void;
  exited: Promise<TrainerExit>;
}

/**
 * A run's time budget split over its stages: the experts get most of it, the router and the
 * mixed baseline (when asked for) a share each. 0 seconds: no budget.
 */
export function stageBudgets(stages: readonly TrainStage[], seconds: number): Partial<Record<TrainStage, number>> {
  if (!(seconds > 0)) return {};
  const share: Record<TrainStage, number> = { experts: 3, router: 1, mixed: 1 };
  const total = stages.reduce((a, s) => a + share[s], 0);
  return Object.fromEntries(stages.map((s) => [s, Math.round((seconds * share[s]) / total)]));
}

/** Windows of training text below which a domain is too small to learn from, said before training. */
export const MIN_TRAIN_WINDOWS = 16;

/**
 * What is worth saying about the datasets before a run starts: a domain too small to learn from
 * (with its size), one without a held-out window (its loss cannot be measured).
 */
export function datasetWarnings(manifest: DatasetManifest, config: MoaConfig, domains?: string[]): string[] {
  const window = config.training.seqLen + 1;
  const out: string[] = [];
  for (const d of manifest.domains) {
    if (domains && !domains.includes(d.domain)) continue;
    if (d.trainTokens > 0 && d.trainTokens < MIN_TRAIN_WINDOWS * window) {
      out.push(`domain ${d.domain}: ${d.trainTokens} training tokens in ${d.files} file${d.files === 1 ? '' : 's'} is too small to learn from (about ${MIN_TRAIN_WINDOWS * window} are needed for ${MIN_TRAIN_WINDOWS} windows of ${window}); its expert will mostly memorise`);
    }
    if (d.trainTokens > 0 && d.valTokens < window) out.push(`domain ${d.domain}: no held-out window (${d.valTokens} validation tokens, a window is ${window}): its held-out loss cannot be measured`);
  }
  return out;
}

/** The FIM sentinel tokens of a base model's tokenizer, or null (none, or no tokenizer this reader loads). */
export function baseFim(baseModelDir: string): FimTokens | null {
  try {
    return detectFim(loadTokenizer(baseModelDir)) ?? null;
  } catch {
    return null; // the tokenizer's problems are reported where it is needed (datasets, completions)
  }
}

/** The trainer's config file (trainer/PROTOCOL.md, `train`): pure, so it is easy to test. */
export function buildTrainConfig(req: TrainRequest, run: RunInfo): Record<string, unknown> {
  const wanted = req.domains ?? req.config.domains.map((d) => d.name);
  const domains = req.manifest.domains.filter((d) => wanted.includes(d.domain));
  const empty = domains.filter((d) => d.trainTokens === 0).map((d) => d.domain);
  if (empty.length) {
    throw new MoaError(`domain${empty.length > 1 ? 's' : ''} ${empty.join(', ')} ha${empty.length > 1 ? 've' : 's'} no training data`, 'Check the include globs in .moa/moa.json, then run "moa data".');
  }
  if (domains.length === 0) throw new MoaError('no domain has a dataset yet', 'Run "moa data" first.');
  const t = req.config.training;
  const stages = req.stages ?? defaultStages(domains.length);
  const rc = req.config.router;
  const budget = stageBudgets(stages, (req.minutes ?? t.minutes) * 60);
  const steps = req.steps ?? t.steps;
  return {
    v: 1,
    run_id: run.id,
    run_dir: run.dir,
    base_model: req.baseModelDir,
    base_model_name: req.config.baseModel,
    experts_dir: req.layout.expertsDir,
    domains: domains.map((d) => ({ name: d.domain, train: d.trainPath, val: d.valPath, fingerprint: d.fingerprint })),
    lora: { r: req.config.lora.r, alpha: req.config.lora.alpha, dropout: req.config.lora.dropout, target_modules: req.config.lora.targetModules },
    steps,
    batch_size: t.batchSize,
    seq_len: t.seqLen,
    lr: t.lr,
    warmup_steps: Math.min(t.warmupSteps, Math.max(0, steps - 1)),
    seed: t.seed,
    // Often enough for early stopping to act (about 8 evaluations), bounded in cost by eval_windows.
    eval_every: Math.max(5, Math.floor(steps / 8)),
    eval_windows: t.evalWindows,
    max_seconds: budget.experts ?? 0,
    max_epochs: t.maxEpochs,
    patience: t.patience,
    device: req.device ?? 'auto',
    threads: 0,
    stages,
    ...(req.keepPartial ? { keep_partial: true } : {}),
    ...(req.fim && t.fimRate > 0 ? { fim: { prefix: req.fim.prefix, suffix: req.fim.suffix, middle: req.fim.middle, rate: t.fimRate } } : {}),
    ...(stages.includes('router')
      ? { router: { steps: req.routerSteps ?? rc.steps, eta: rc.eta, expert_lr_mult: rc.expertLrMult, top_k: rc.topK, out_dir: req.layout.routerDir, max_seconds: budget.router ?? 0 } }
      : {}),
    ...(stages.includes('mixed') ? { mixed: { out_dir: join(req.layout.baselinesDir, 'mixed'), max_seconds: budget.mixed ?? 0 } } : {}),
  };
}

/** Starts a training run; every event is persisted to the run's events.jsonl. */
export function startTraining(req: TrainRequest): TrainingSession {
  const id = newRunId();
  // The lock first: a refused start must leave no run folder behind.
  const [lock, { run, configPath }] = underRunLock(req.layout, id, () => createTrainRun(req, id, {}));
  return launch(req, run, lock, configPath, []);
}

/** Takes the run lock, clears a killed writer's leftovers, then `prepare`s the run; a failure releases the lock. */
function underRunLock<T>(layout: WorkspaceLayout, runId: string, prepare: () => T): [RunLock, T] {
  const lock = acquireRunLock(layout, runId);
  try {
    removeStaleTemps(layout.moaDir, true);
    return [lock, prepare()];
  } catch (e) {
    lock.release();
    throw e;
  }
}

/** The run folder and its train-config.json; a config that cannot be written fails the run it made. */
function createTrainRun(req: TrainRequest, id: string, meta: Record<string, unknown>): { run: RunInfo; configPath: string } {
  const run = createRun(req.layout, id, { kind: 'train', steps: req.steps ?? req.config.training.steps, ...meta });
  const configPath = trainConfigPath(run);
  try {
    writeJsonAtomic(configPath, buildTrainConfig({ ...req, fim: req.fim === undefined ? baseFim(req.baseModelDir) : req.fim }, run));
  } catch (e) {
    finishRun(run, 'failed', { error: errorMessage(e) });
    throw e;
  }
  return { run, configPath };
}

/**
 * `moa train --print-launch`: a run folder and config as `moa train` would make them, for the
 * trainer to be started elsewhere (launchScript.ts prints how). No lock is taken and nothing is
 * spawned here; the run's status comes from the events the trainer writes (runs.ts, `external`).
 */
export function prepareExternalRun(req: TrainRequest): { run: RunInfo; configPath: string } {
  return createTrainRun(req, newRunId(), { status: 'external', pid: null, external: true });
}

export interface ResumeRequest {
  layout: WorkspaceLayout;
  product: ProductLayout;
  python: string;
  /** The run to continue from its last checkpoint. */
  run: RunInfo;
  /** Publish the checkpoint's experts without training further. */
  finishNow?: boolean;
  /** A stop during the resumed run publishes the partly trained experts. */
  keepPartial?: boolean;
  /** Several processes for the resumed run (the trainer refuses a world size its checkpoint cannot take). */
  processes?: DistLaunch;
  onEvent?: (e: TrainerEvent) => void;
  onLog?: (line: string) => void;
}

/** Continues a stopped, failed or interrupted run from its last checkpoint, in the same folder. */
export function resumeTraining(req: ResumeRequest): TrainingSession {
  const { run, layout } = req;
  const status = runStatus(layout, run.id);
  if (status === 'done') throw new MoaError(`${run.dir}: run ${run.id} finished; there is nothing to resume`, 'Start a new run with "moa train".');
  if (!hasCheckpoint(run)) throw new MoaError(`${run.dir}: run ${run.id} has no checkpoint to resume from`, 'Start a new run with "moa train".');
  const configPath = trainConfigPath(run);
  const [lock] = underRunLock(layout, run.id, () => {
    const config = readJsonObject(configPath, 'The run folder is incomplete; start a new run.');
    // Both flags leave the run's fingerprint unchanged (the trainer's RESUME_NEUTRAL fields).
    writeJsonAtomic(configPath, { ...config, keep_partial: req.keepPartial === true, finish_now: req.finishNow === true });
    updateRun(run, { status: 'running', pid: process.pid, resumed: new Date().toISOString() });
  });
  return launch(req, run, lock, configPath, ['--resume']);
}

function launch(req: { layout: WorkspaceLayout; product: ProductLayout; python: string; processes?: DistLaunch; onEvent?: (e: TrainerEvent) => void; onLog?: (line: string) => void }, run: RunInfo, lock: RunLock, configPath: string, extraArgs: string[]): TrainingSession {
  const proc = spawnTrainer({
    python: req.python,
    processes: req.processes,
    trainerDir: req.product.trainerDir,
    command: 'train',
    configPath,
    extraArgs,
    onEvent: (e) => {
      // A failure to persist the event fails the run (spawnTrainer stops the trainer).
      appendEvent(run, e);
      req.onEvent?.(e);
    },
    onNoise: (line) => req.onLog?.(line),
    onStderr: (text) => req.onLog?.(text.trimEnd()),
  });
  if (proc.pid !== undefined) {
    try {
      lock.addTrainer(proc.pid);
    } catch (e) {
      req.onLog?.(`could not record the trainer in the run lock: ${errorMessage(e)}`);
    }
  }
  const exited = proc.exited.then((exit) => {
    lock.release();
    const ok = succeeded(exit);
    try {
      if (ok) {
        const kept = keptPrevious(exit.done);
        finishRun(run, exit.done.stopped ? 'stopped' : 'done', { exit_code: exit.code, ...(kept.length ? { kept_previous: kept } : {}) });
      } else finishRun(run, 'failed', { exit_code: exit.code, signal: exit.signal, error: describeFailure(exit).slice(0, 4000) });
    } catch (e) {
      // The run's own record cannot be written (the disk is full, say): a run we cannot record
      // has not succeeded, whatever the trainer said.
      return { ...exit, hostError: `${exit.hostError ? `${exit.hostError}; ` : ''}${run.metaFile} could not be written: ${errorMessage(e)}` };
    }
    return exit;
  });
  return { run, stop: () => proc.stop(), exited };
}
