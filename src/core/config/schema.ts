/** The shape of `.moa/moa.json` (version 1). */
export type RoutingMode = 'label' | 'learned' | 'auto' | 'pinned' | 'off';

export interface DomainConfig {
  name: string;
  include: string[];
  exclude: string[];
  languages: string[];
}

export interface LoraConfig {
  r: number;
  alpha: number;
  dropout: number;
  targetModules: string[];
}

export interface TrainingConfig {
  steps: number;
  batchSize: number;
  seqLen: number;
  lr: number;
  warmupSteps: number;
  seed: number;
  /** Wall-clock budget for a whole run (experts, router, baseline), in minutes; 0: steps alone decide. */
  minutes: number;
  /** An expert stops once it has seen its domain's training tokens this many times (0: no cap). */
  maxEpochs: number;
  /** An expert stops after this many evaluations without a held-out improvement (0: never). */
  patience: number;
  /** Held-out windows per domain in each evaluation during training (bounds its cost). */
  evalWindows: number;
  /** Share of training windows in fill-in-the-middle form, when the base model has FIM tokens (0: off). */
  fimRate: number;
}

export interface RouterConfig {
  /** Stage-2 optimizer steps. */
  steps: number;
  /** η in L = L_LM + η·L_cls. */
  eta: number;
  /** Experts' learning rate in stage 2 as a fraction of stage 1's (0 freezes them). */
  expertLrMult: number;
  topK: number;
}

export interface DataConfig {
  maxFileBytes: number;
  valFraction: number;
}

export interface MoaConfig {
  version: 1;
  baseModel: string;
  domains: DomainConfig[];
  lora: LoraConfig;
  training: TrainingConfig;
  data: DataConfig;
  router: RouterConfig;
  routing: { mode: RoutingMode };
}

export const ROUTING_MODES: readonly RoutingMode[] = ['label', 'learned', 'auto', 'pinned', 'off'];
export const ATTENTION_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const;

export const DEFAULT_BASE_MODEL = 'builtin:moa-tiny';

export function defaultLora(): LoraConfig {
  return { r: 8, alpha: 16, dropout: 0, targetModules: [...ATTENTION_MODULES] };
}

export function defaultTraining(): TrainingConfig {
  return { steps: 200, batchSize: 8, seqLen: 128, lr: 2e-3, warmupSteps: 10, seed: 0, minutes: 8, maxEpochs: 4, patience: 3, evalWindows: 16, fimRate: 0.5 };
}

export function defaultData(): DataConfig {
  return { maxFileBytes: 1024 * 1024, valFraction: 0.1 };
}

export function defaultRouter(): RouterConfig {
  return { steps: 100, eta: 0.1, expertLrMult: 0.1, topK: 1 };
}
