import { readJsonObject } from '../util/json';
import { isAbsolute, join, resolve } from 'node:path';
import type { ProductLayout } from '../paths';
import { MoaError } from '../util/errors';
import { HF_PREFIX, resolveHfModel } from './hfCache';

export interface BaseModelInfo {
  /** As written in the config: `builtin:moa-tiny` or a path. */
  name: string;
  dir: string;
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  /** config.json's head_dim when given (Gemma-, Mistral-Nemo-style models set it apart from hidden / heads). */
  headDim: number;
  intermediateSize: number;
  tiedEmbeddings: boolean;
  /** Parameters counted from the shapes in config.json (embeddings once when tied). */
  parameters: number;
}

const BUILTIN_PREFIX = 'builtin:';

export function resolveBaseModelDir(name: string, product: ProductLayout, workspaceRoot: string): string {
  if (name.startsWith(BUILTIN_PREFIX)) {
    const id = name.slice(BUILTIN_PREFIX.length);
    if (!/^[a-z0-9-]+$/.test(id)) throw new MoaError(`unknown built-in model "${name}"`);
    return join(product.modelsDir, id);
  }
  if (name.startsWith(HF_PREFIX)) return resolveHfModel(name);
  return isAbsolute(name) ? name : resolve(workspaceRoot, name);
}

export function readBaseModel(name: string, dir: string): BaseModelInfo {
  const file = join(dir, 'config.json');
  const c = readJsonObject(file, `Base model "${name}" must be a folder with config.json, model.safetensors and tokenizer.json.`);
  const int = (k: string, fallback?: number): number => {
    const v = c[k] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new MoaError(`${file}: "${k}" must be a positive integer`);
    return v;
  };
  const hidden = int('hidden_size');
  const heads = int('num_attention_heads');
  const kvHeads = int('num_key_value_heads', heads);
  const layers = int('num_hidden_layers');
  const inter = int('intermediate_size');
  const vocab = int('vocab_size');
  const headDim = c['head_dim'] === undefined || c['head_dim'] === null ? hidden / heads : int('head_dim');
  if (!Number.isInteger(headDim)) throw new MoaError(`${file}: hidden_size ${hidden} is not a multiple of num_attention_heads ${heads}; set "head_dim"`);
  const tied = c['tie_word_embeddings'] === true;
  const attn = hidden * heads * headDim * 2 + hidden * kvHeads * headDim * 2;
  const perLayer = attn + 3 * hidden * inter + 2 * hidden;
  const parameters = vocab * hidden * (tied ? 1 : 2) + layers * perLayer + hidden;
  return {
    name,
    dir,
    modelType: typeof c['model_type'] === 'string' ? (c['model_type'] as string) : 'unknown',
    vocabSize: vocab,
    hiddenSize: hidden,
    numLayers: layers,
    numHeads: heads,
    numKvHeads: kvHeads,
    headDim,
    intermediateSize: inter,
    tiedEmbeddings: tied,
    parameters,
  };
}

/** The base model a workspace's config names, read from where that name resolves. */
export function configuredBase(baseModel: string, product: ProductLayout, workspaceRoot: string): BaseModelInfo {
  return readBaseModel(baseModel, resolveBaseModelDir(baseModel, product, workspaceRoot));
}
