import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { MoaConfig } from '../config/schema';
import { baseFim } from '../trainer/train';
import { writeJsonAtomic } from '../util/atomic';
import { readJsonObject } from '../util/json';
import { configuredBase, type BaseModelInfo } from './base';
import type { ProductLayout } from '../paths';
import { moduleDims } from '../adapters/store';
import { cachedHfModels } from './hfCache';

/**
 * Choosing the base model (issue #19): what each candidate is, what training it would need, and
 * the config change. Pure but for reading the model folder's config, tokenizer and file sizes.
 */

export interface BaseDescription {
  info: BaseModelInfo;
  /** Bytes of weight files in the folder. */
  sizeBytes: number;
  /** The fill-in-the-middle family its tokenizer has, or null. */
  fim: string | null;
}

export function describeBase(name: string, product: ProductLayout, workspaceRoot: string): BaseDescription {
  const info = configuredBase(name, product, workspaceRoot);
  const sizeBytes = readdirSync(info.dir).filter((f) => f.endsWith('.safetensors')).reduce((s, f) => s + statSync(join(info.dir, f)).size, 0);
  return { info, sizeBytes, fim: baseFim(info.dir)?.family ?? null };
}

const SUPPORTED = new Set(['llama', 'qwen2', 'mistral']);

/**
 * The base models one can pick without a folder dialog: the built-in one, then every model in
 * the Hugging Face cache whose architecture the trainer takes (others are left out, not offered).
 */
export function baseChoices(product: ProductLayout, workspaceRoot: string): { name: string; description: BaseDescription }[] {
  const out = [{ name: 'builtin:moa-tiny', description: describeBase('builtin:moa-tiny', product, workspaceRoot) }];
  for (const m of cachedHfModels()) {
    try {
      const d = describeBase(m.name, product, workspaceRoot);
      if (SUPPORTED.has(d.info.modelType)) out.push({ name: m.name, description: d });
    } catch {
      // unreadable or not a causal LM of ours: not offered
    }
  }
  return out;
}

export interface MemoryEstimate {
  weights: number;
  /** The experts' LoRA weights, gradients and Adam moments (fp32). */
  adapters: number;
  /** What one step keeps for the backward pass, logits included. */
  activations: number;
  total: number;
}

/**
 * An estimate of stage 1's memory for `domains` experts trained together: the frozen weights
 * (`weightBytes` each: 2 for bf16 on a GPU, 4 for fp32 on a CPU), 16 bytes per LoRA parameter
 * (fp32 weight, gradient and two Adam moments), and per token of the step (batch rows × domains ×
 * seq_len) each layer's saved inputs (norms, q/k/v, attention output, the MLP's gate, up, activation
 * and down input) plus fp32 logits and their gradient. Framework overhead is not included: treat it
 * as a floor, not a promise.
 */
export function trainingMemory(b: BaseModelInfo, t: { r: number; targetModules: readonly string[]; batchSize: number; seqLen: number; domains: number; weightBytes: number }): MemoryEstimate {
  const dims = moduleDims(b);
  const loraPerExpert = b.numLayers * t.targetModules.reduce((s, m) => s + (dims[m] ? t.r * (dims[m]![0] + dims[m]![1]) : 0), 0);
  const tokens = t.batchSize * t.domains * t.seqLen;
  const kv = b.numKvHeads * b.headDim;
  const perTokenLayer = 5 * b.hiddenSize + 2 * kv + 4 * b.intermediateSize;
  const weights = b.parameters * t.weightBytes;
  const adapters = loraPerExpert * t.domains * 16;
  const activations = tokens * (b.numLayers * perTokenLayer * t.weightBytes + 2 * b.vocabSize * 4);
  return { weights, adapters, activations, total: weights + adapters + activations };
}

/** The estimate for the workspace's current training settings. */
export function workspaceTrainingMemory(b: BaseModelInfo, config: MoaConfig, weightBytes: number): MemoryEstimate {
  return trainingMemory(b, { r: config.lora.r, targetModules: config.lora.targetModules, batchSize: config.training.batchSize, seqLen: config.training.seqLen, domains: Math.max(1, config.domains.length), weightBytes });
}

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) (n /= 1024), i++;
  return `${n.toFixed(n >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}

/** Sets baseModel in the user's moa.json, every other key as they wrote it. */
export function setBaseModel(file: string, name: string): void {
  writeJsonAtomic(file, { ...readJsonObject(file), baseModel: name });
}
