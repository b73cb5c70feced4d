import { join } from 'node:path';
import type { MoaConfig } from '../config/schema';
import type { DatasetManifest } from '../data/shards';
import type { ProductLayout, WorkspaceLayout } from '../paths';
import { MoaError } from '../util/errors';
import { writeJsonAtomic } from '../util/atomic';
import type { TrainerEvent } from './events';
import { spawnTrainer, type TrainerExit } from './process';
import { acquireRunLock, appendEvent, createRun, finishRun, type RunInfo } from './runs';

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
  return {
    v: 1,
    run_id: run.id,
    run_dir: run.dir,
    base_model: req.baseModelDir,
    base_model_name: req.config.baseModel,
    experts_dir: req.layout.expertsDir,
    domains: domains.map((d) => ({ name: d.domain, train: d.trainPath, val: d.valPath, fingerprint: d.fingerprint })),
    lora: { r: req.config.lora.r, alpha: req.config.lora.alpha, dropout: req.config.lora.dropout, target_modules: req.config.lora.targetModules },
    steps: req.steps ?? t.steps,
    batch_size: t.batchSize,
    seq_len: t.seqLen,
    lr: t.lr,
    warmup_steps: Math.min(t.warmupSteps, Math.max(0, (req.steps ?? t.steps) - 1)),
    seed: t.seed,
    eval_every: Math.max(1, Math.floor((req.steps ?? t.steps) / 4)),
    device: req.device ?? 'auto',
    threads: 0,
    stages,
    ...(stages.includes('router')
      ? { router: { steps: req.routerSteps ?? rc.steps, eta: rc.eta, expert_lr_mult: rc.expertLrMult, top_k: rc.topK, out_dir: req.layout.routerDir } }
      : {}),
    ...(stages.includes('mixed') ? { mixed: { out_dir: join(req.layout.baselinesDir, 'mixed') } } : {}),
  };
}

/** Starts stage-1 training of the experts; every event is persisted to the run's events.jsonl. */
export function startTraining(req: TrainRequest): TrainingSession {
  const run = createRun(req.layout, { kind: 'train', steps: req.steps ?? req.config.training.steps });
  const release = acquireRunLock(req.layout, run.id);
  let trainConfig: Record<string, unknown>;
  try {
    trainConfig = buildTrainConfig(req, run);
  } catch (e) {
    release();
    finishRun(run, 'failed', { error: e instanceof Error ? e.message : String(e) });
    throw e;
  }
  const configPath = join(run.dir, 'train-config.json');
  writeJsonAtomic(configPath, trainConfig);
  const proc = spawnTrainer({
    python: req.python,
    trainerDir: req.product.trainerDir,
    command: 'train',
    configPath,
    cwd: req.layout.root,
    onEvent: (e) => {
      appendEvent(run, e);
      req.onEvent?.(e);
    },
    onNoise: (line) => req.onLog?.(line),
    onStderr: (text) => req.onLog?.(text.trimEnd()),
  });
  const exited = proc.exited.then((exit) => {
    release();
    const status = exit.done ? (exit.done.stopped ? 'stopped' : 'done') : 'failed';
    finishRun(run, status, exit.done ? {} : { exit_code: exit.code, error: exit.error?.message ?? exit.stderrTail.slice(-2000) });
    return exit;
  });
  return { run, stop: () => proc.stop(), exited };
}
