import { isObject } from '../util/json';
import { EVENT_TYPES, requiredFields, typeMatches, type FieldSchema } from './eventSchema';

/** The trainer's JSON-lines events (trainer/PROTOCOL.md, version 1; schemas/trainer-events.schema.json). */
export const PROTOCOL_VERSION = 1;

export interface HelloEvent { type: 'hello'; python: string; torch: string; device: string; gpu: string | null; gpu_memory_gb: number | null; gpu_count?: number; threads?: number; protocol?: number; pid?: number }
export interface PlanEvent { type: 'plan'; stage: string; experts: string[]; steps: number; batch_size?: number; seq_len?: number; tokens?: number; params_trainable?: number; params_base?: number; world_size?: number }
export interface StepEvent { type: 'step'; stage: string; expert: string; step: number; steps: number; loss: number; lr: number; tokens_per_s: number; elapsed_s: number; eta_s?: number; mfu?: number | null; /** When the trainer wrote it (Unix seconds). */ t?: number; lm_loss?: number | null; cls_loss?: number | null; router_accuracy?: number | null }
/** An expert stopped before its stage's end (its epoch cap, or no held-out gain for `patience` evaluations). */
export interface ExpertDoneEvent { type: 'expert_done'; stage: string; expert: string; step: number; reason: string; best_val_loss?: number | null }
export interface EvalEvent {
  type: 'eval'; stage: string; expert: string; domain: string; loss: number; step?: number;
  /** Stage 2: how often the router chose the domain's expert, where it sent the rest, per layer, and the loss with oracle routing. */
  router_accuracy?: number; routed_to?: Record<string, number>; router_accuracy_per_layer?: number[]; oracle_loss?: number;
}
export interface CheckpointEvent { type: 'checkpoint'; path: string; step?: number; stage?: string }
export interface ArtifactEvent { type: 'artifact'; kind: 'expert' | 'router' | 'mixed' | 'onnx' | 'base'; name: string; path: string; stage?: string; variant?: string }
export interface DoneEvent { type: 'done'; stopped: boolean; elapsed_s?: number; [extra: string]: unknown }
export interface ErrorEvent { type: 'error'; message: string; hint: string | null }

export type TrainerEvent = HelloEvent | PlanEvent | StepEvent | EvalEvent | CheckpointEvent | ArtifactEvent | ExpertDoneEvent | DoneEvent | ErrorEvent;

const str = (v: unknown): v is string => typeof v === 'string';

/**
 * The fields each type must carry with the right JS type, from schemas/trainer-events.schema.json;
 * the rest is passed through (a newer trainer may send more; the contract tests hold both sides
 * to the schema's every field).
 */
const REQUIRED: Record<string, [string, FieldSchema['type']][]> = Object.fromEntries(EVENT_TYPES.map((t) => [t, requiredFields(t)]));

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
  if (!str(type) || !REQUIRED[type]) return { ok: false, problem: `unknown event type ${JSON.stringify(type)}` };
  for (const [field, types] of REQUIRED[type]!) {
    if (!(field in value) || !typeMatches(value[field], types)) return { ok: false, problem: `${type} event: field "${field}" missing or of the wrong type` };
  }
  if (type === 'error' && !str(value['hint'])) value['hint'] = null;
  if (type === 'step' && value['loss'] === null) value['loss'] = Number.NaN;
  return { ok: true, event: value as unknown as TrainerEvent };
}
