/** The trainer's JSON-lines events (trainer/PROTOCOL.md, version 1). */
export const PROTOCOL_VERSION = 1;

export interface HelloEvent { type: 'hello'; python: string; torch: string; device: string; gpu: string | null; gpu_memory_gb: number | null; threads?: number }
export interface PlanEvent { type: 'plan'; stage: string; experts: string[]; steps: number; batch_size?: number; seq_len?: number; tokens?: number; params_trainable?: number; params_base?: number }
export interface StepEvent { type: 'step'; stage: string; expert: string; step: number; steps: number; loss: number; lr: number; tokens_per_s: number; elapsed_s: number; eta_s?: number }
/** An expert stopped before its stage's end (its epoch cap, or no held-out gain for `patience` evaluations). */
export interface ExpertDoneEvent { type: 'expert_done'; stage: string; expert: string; step: number; reason: string; best_val_loss?: number | null }
export interface EvalEvent { type: 'eval'; stage: string; expert: string; domain: string; loss: number; step?: number }
export interface CheckpointEvent { type: 'checkpoint'; path: string; step?: number }
export interface ArtifactEvent { type: 'artifact'; kind: string; name: string; path: string }
export interface DoneEvent { type: 'done'; stopped: boolean; elapsed_s?: number; [extra: string]: unknown }
export interface ErrorEvent { type: 'error'; message: string; hint: string | null }

export type TrainerEvent = HelloEvent | PlanEvent | StepEvent | EvalEvent | CheckpointEvent | ArtifactEvent | ExpertDoneEvent | DoneEvent | ErrorEvent;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown): v is number => typeof v === 'number';
const str = (v: unknown): v is string => typeof v === 'string';
/** JSON has no NaN: the trainer sends a diverged loss as null. */
const numOrNull = (v: unknown): boolean => typeof v === 'number' || v === null;

/** The fields each type must carry with the right JS type; the rest is passed through. */
const REQUIRED: Record<TrainerEvent['type'], Record<string, (v: unknown) => boolean>> = {
  hello: { torch: str, device: str },
  plan: { stage: str, experts: Array.isArray, steps: num },
  step: { stage: str, expert: str, step: num, steps: num, loss: numOrNull, lr: num, tokens_per_s: num, elapsed_s: num },
  eval: { stage: str, expert: str, domain: str, loss: num },
  checkpoint: { path: str },
  artifact: { kind: str, name: str, path: str },
  expert_done: { stage: str, expert: str, step: num, reason: str },
  done: { stopped: (v) => typeof v === 'boolean' },
  error: { message: str },
};

/** The stages a stopped run left as they were (`done.kept_previous`; absent before protocol 0.4). */
export function keptPrevious(done: DoneEvent): string[] {
  const kept = done['kept_previous'];
  return Array.isArray(kept) ? kept.filter((s): s is string => typeof s === 'string') : [];
}

export type ParsedEvent = { ok: true; event: TrainerEvent } | { ok: false; problem: string };

/** Validates one parsed JSON line against the protocol. */
export function parseTrainerEvent(value: unknown): ParsedEvent {
  if (!isObject(value)) return { ok: false, problem: 'not a JSON object' };
  if (value['v'] !== PROTOCOL_VERSION) return { ok: false, problem: `protocol version ${JSON.stringify(value['v'])}, expected ${PROTOCOL_VERSION}` };
  const type = value['type'];
  if (!str(type) || !(type in REQUIRED)) return { ok: false, problem: `unknown event type ${JSON.stringify(type)}` };
  for (const [field, check] of Object.entries(REQUIRED[type as TrainerEvent['type']])) {
    if (!check(value[field])) return { ok: false, problem: `${type} event: field "${field}" missing or of the wrong type` };
  }
  if (type === 'error' && !str(value['hint'])) value['hint'] = null;
  if (type === 'step' && value['loss'] === null) value['loss'] = Number.NaN;
  return { ok: true, event: value as unknown as TrainerEvent };
}
