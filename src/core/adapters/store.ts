import { existsSync, readdirSync, statSync } from 'node:fs';
import { readJsonObject, readJsonObjectOr } from '../util/json';
import { join } from 'node:path';
import type { BaseModelInfo } from '../models/base';
import { MoaError, errorMessage } from '../util/errors';
import { ATTENTION_TARGETS, MLP_TARGETS, loraKey } from './peftKeys';
import { countSafetensorsElements, readSafetensors, tensorToFloat32 } from './safetensors';

export interface ExpertMeta {
  domain?: string;
  run_id?: string;
  steps?: number;
  train_loss?: number;
  val_loss?: number;
  fingerprint?: string;
  created?: string;
}

export interface ExpertSummary {
  name: string;
  dir: string;
  status: 'ok' | 'broken';
  reason?: string;
  r?: number;
  alpha?: number;
  targetModules?: string[];
  sizeBytes?: number;
  /** LoRA parameters (from the safetensors header's shapes). */
  parameters?: number;
  meta: ExpertMeta;
}

export interface AdapterConfig {
  r: number;
  alpha: number;
  targetModules: string[];
  useRslora: boolean;
}

export interface ModuleWeights {
  inFeatures: number;
  outFeatures: number;
  /** Per layer: A as [r, in] and B as [out, r], row-major. */
  A: Float32Array[];
  B: Float32Array[];
}

export interface ExpertWeights {
  name: string;
  r: number;
  /** PEFT's scaling: alpha / r, or alpha / sqrt(r) with rsLoRA. */
  scaling: number;
  modules: Map<string, ModuleWeights>;
}

export function readAdapterConfig(dir: string): AdapterConfig {
  const file = join(dir, 'adapter_config.json');
  const c = readJsonObject(file);
  if (c['peft_type'] !== 'LORA') throw new MoaError(`${file}: peft_type ${JSON.stringify(c['peft_type'])} is not supported (only LORA)`);
  if (c['use_dora'] === true) throw new MoaError(`${file}: DoRA adapters are not supported`);
  const r = c['r'];
  if (typeof r !== 'number' || !Number.isInteger(r) || r <= 0) throw new MoaError(`${file}: "r" must be a positive integer`);
  const alpha = typeof c['lora_alpha'] === 'number' ? (c['lora_alpha'] as number) : r;
  const tm = c['target_modules'];
  const targetModules = typeof tm === 'string' ? [tm] : Array.isArray(tm) ? tm.filter((x): x is string => typeof x === 'string') : [];
  const unknown = targetModules.filter((m) => !ATTENTION_TARGETS.has(m) && !MLP_TARGETS.has(m));
  if (targetModules.length === 0 || unknown.length) {
    throw new MoaError(`${file}: target_modules ${JSON.stringify(tm)} must name Llama projections (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)`);
  }
  return { r, alpha, targetModules, useRslora: c['use_rslora'] === true };
}

function readMeta(dir: string): ExpertMeta {
  return (readJsonObjectOr(join(dir, 'expert.json')) ?? {}) as ExpertMeta;
}

/** Lists experts; a broken one is reported with its reason instead of breaking the list. */
export function listExperts(expertsDir: string): ExpertSummary[] {
  if (!existsSync(expertsDir)) return [];
  const out: ExpertSummary[] = [];
  for (const name of readdirSync(expertsDir).sort()) {
    const dir = join(expertsDir, name);
    if (name.startsWith('.') || !statSync(dir).isDirectory()) continue;
    const meta = readMeta(dir);
    try {
      const cfg = readAdapterConfig(dir);
      const weights = join(dir, 'adapter_model.safetensors');
      if (!existsSync(weights)) throw new MoaError(`${weights}: missing`);
      out.push({ name, dir, status: 'ok', r: cfg.r, alpha: cfg.alpha, targetModules: cfg.targetModules, sizeBytes: statSync(weights).size, parameters: countSafetensorsElements(weights), meta });
    } catch (e) {
      out.push({ name, dir, status: 'broken', reason: errorMessage(e), meta });
    }
  }
  return out;
}

/** [in, out] features of each LoRA target module of the base model. */
export function moduleDims(base: BaseModelInfo): Record<string, [number, number]> {
  const headDim = base.hiddenSize / base.numHeads;
  return {
    q_proj: [base.hiddenSize, base.numHeads * headDim],
    k_proj: [base.hiddenSize, base.numKvHeads * headDim],
    v_proj: [base.hiddenSize, base.numKvHeads * headDim],
    o_proj: [base.numHeads * headDim, base.hiddenSize],
    gate_proj: [base.hiddenSize, base.intermediateSize],
    up_proj: [base.hiddenSize, base.intermediateSize],
    down_proj: [base.intermediateSize, base.hiddenSize],
  };
}

/** Loads an expert's LoRA matrices, checking every shape against the base model. */
export function loadExpertWeights(dir: string, name: string, base: BaseModelInfo): ExpertWeights {
  const cfg = readAdapterConfig(dir);
  const st = readSafetensors(join(dir, 'adapter_model.safetensors'));
  const dims = moduleDims(base);

  const modules = new Map<string, ModuleWeights>();
  for (const m of cfg.targetModules) {
    const [inF, outF] = dims[m]!;
    const mw: ModuleWeights = { inFeatures: inF, outFeatures: outF, A: [], B: [] };
    for (let l = 0; l < base.numLayers; l++) {
      const ka = loraKey(l, m, 'A');
      const kb = loraKey(l, m, 'B');
      const ta = st.tensors.get(ka);
      const tb = st.tensors.get(kb);
      if (!ta || !tb) throw new MoaError(`${st.file}: missing ${!ta ? ka : kb} (expected ${base.numLayers} layers of ${m})`);
      if (ta.shape.join() !== `${cfg.r},${inF}`) throw new MoaError(`${st.file}: ${ka} has shape [${ta.shape}] but the base model needs [${cfg.r}, ${inF}]`);
      if (tb.shape.join() !== `${outF},${cfg.r}`) throw new MoaError(`${st.file}: ${kb} has shape [${tb.shape}] but the base model needs [${outF}, ${cfg.r}]`);
      mw.A.push(tensorToFloat32(st, ka));
      mw.B.push(tensorToFloat32(st, kb));
    }
    modules.set(m, mw);
  }
  const scaling = cfg.useRslora ? cfg.alpha / Math.sqrt(cfg.r) : cfg.alpha / cfg.r;
  return { name, r: cfg.r, scaling, modules };
}

export type Freshness = 'fresh' | 'stale' | 'unknown';

/** An expert is stale when its domain's data changed since it was trained (fingerprints differ). */
export function expertFreshness(expert: ExpertSummary | undefined, datasetFingerprint: string | undefined): Freshness {
  if (!expert?.meta.fingerprint || !datasetFingerprint) return 'unknown';
  return expert.meta.fingerprint === datasetFingerprint ? 'fresh' : 'stale';
}
