import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors, tensorToFloat32, type SafetensorsFile } from '../adapters/safetensors';
import type { BaseModelInfo } from '../models/base';
import { MoaError } from '../util/errors';
import { loadTokenizer } from '../tokenizer/load';
import { readJsonObject } from '../util/json';
import { writeGguf, type GgmlType, type GgufTensor, type MetaValue } from './write';

/**
 * A Llama-architecture base model (the built-in moa-tiny, Hugging Face Llama, Mistral and SmolLM
 * folders) as llama.cpp reads it: its `llama.*` metadata, tensors renamed to llama.cpp's names,
 * and the rows of the query and key projections reordered as llama.cpp's converter does (its
 * rotary embedding pairs neighbouring dimensions; transformers pairs the two halves of a head).
 */

const LAYER_TENSORS: Record<string, string> = {
  'input_layernorm.weight': 'attn_norm.weight',
  'self_attn.q_proj.weight': 'attn_q.weight',
  'self_attn.k_proj.weight': 'attn_k.weight',
  'self_attn.v_proj.weight': 'attn_v.weight',
  'self_attn.o_proj.weight': 'attn_output.weight',
  'post_attention_layernorm.weight': 'ffn_norm.weight',
  'mlp.gate_proj.weight': 'ffn_gate.weight',
  'mlp.up_proj.weight': 'ffn_up.weight',
  'mlp.down_proj.weight': 'ffn_down.weight',
};

const MODULE_TENSORS: Record<string, string> = { q_proj: 'attn_q', k_proj: 'attn_k', v_proj: 'attn_v', o_proj: 'attn_output', gate_proj: 'ffn_gate', up_proj: 'ffn_up', down_proj: 'ffn_down' };

/** The llama.cpp weight a LoRA target module adapts, in layer `l`. */
export function ggufModuleName(l: number, module: string): string {
  const t = MODULE_TENSORS[module];
  if (!t) throw new MoaError(`no llama.cpp tensor for the LoRA target "${module}"`);
  return `blk.${l}.${t}.weight`;
}

/**
 * llama.cpp's order of a query/key projection's output rows: within each head, the first and
 * second halves interleave (row h·d + 2i + s comes from row h·d + s·d/2 + i).
 */
export function interleaveRows(w: Float32Array, rows: number, cols: number, headDim: number): Float32Array {
  const out = new Float32Array(w.length);
  const half = headDim / 2;
  for (let r = 0; r < rows; r++) {
    const h = Math.floor(r / headDim);
    const j = r % headDim;
    const src = h * headDim + (j % 2) * half + (j >> 1);
    out.set(w.subarray(src * cols, (src + 1) * cols), r * cols);
  }
  return out;
}

/** Rows a projection's weights are reordered by for llama.cpp: queries and keys only. */
export const reordered = (module: string): boolean => module === 'q_proj' || module === 'k_proj';

function num(c: Record<string, unknown>, k: string, fallback: number): number {
  const v = c[k] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new MoaError(`config.json: "${k}" must be a number`);
  return v;
}

/** The `llama.*` metadata of a base. */
export function llamaMetadata(base: BaseModelInfo): Record<string, MetaValue> {
  const c = readJsonObject(join(base.dir, 'config.json'));
  if (base.modelType !== 'llama' && base.modelType !== 'mistral') throw new MoaError(`${join(base.dir, 'config.json')}: model_type "${base.modelType}" has no GGUF export yet (llama and mistral do)`);
  for (const k of ['attention_bias', 'mlp_bias']) if (c[k] === true) throw new MoaError(`${join(base.dir, 'config.json')}: "${k}": llama.cpp's llama architecture has no biases`);
  const rope = c['rope_scaling'];
  if (rope !== undefined && rope !== null) throw new MoaError(`${join(base.dir, 'config.json')}: rope_scaling is not exported to GGUF yet`);
  return {
    'general.architecture': 'llama',
    'llama.context_length': { u32: num(c, 'max_position_embeddings', 2048) },
    'llama.embedding_length': { u32: base.hiddenSize },
    'llama.block_count': { u32: base.numLayers },
    'llama.feed_forward_length': { u32: base.intermediateSize },
    'llama.attention.head_count': { u32: base.numHeads },
    'llama.attention.head_count_kv': { u32: base.numKvHeads },
    'llama.attention.key_length': { u32: base.headDim },
    'llama.attention.value_length': { u32: base.headDim },
    'llama.rope.dimension_count': { u32: base.headDim },
    'llama.rope.freq_base': { f32: num(c, 'rope_theta', 10000) },
    'llama.attention.layer_norm_rms_epsilon': { f32: num(c, 'rms_norm_eps', 1e-6) },
    'llama.vocab_size': { u32: base.vocabSize },
  };
}

/** GPT-2's printable stand-ins for the 256 byte values (byte-level BPE vocabularies are written in them). */
export function byteChars(): string[] {
  const keep = new Set<number>();
  for (let b = 33; b <= 126; b++) keep.add(b);
  for (let b = 161; b <= 172; b++) keep.add(b);
  for (let b = 174; b <= 255; b++) keep.add(b);
  let extra = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(keep.has(b) ? b : 256 + extra++));
}

const TOKEN_NORMAL = 1;
const TOKEN_CONTROL = 3;

/**
 * The tokenizer as `tokenizer.ggml.*`: moa-tiny's byte vocabulary (id = byte, then <s> and </s>)
 * and byte-level BPE tokenizer.json files (vocab and merges as they are) become llama.cpp's
 * "gpt2" tokenizer; others are refused by name.
 */
export function tokenizerMetadata(base: BaseModelInfo): Record<string, MetaValue> {
  const file = join(base.dir, 'tokenizer.json');
  const t = readJsonObject(file);
  const added = (Array.isArray(t['added_tokens']) ? t['added_tokens'] : []) as { id: number; content: string; special?: boolean }[];
  // The special ids our engine uses, so llama.cpp frames a prompt as our completions do.
  const tok = loadTokenizer(base.dir);
  let tokens: string[];
  let merges: string[] = [];
  const moa = t['moa'] as { type?: string } | undefined;
  if (moa?.type === 'bytes') {
    tokens = byteChars();
  } else {
    const model = t['model'] as { type?: string; vocab?: Record<string, number>; merges?: (string | string[])[]; byte_fallback?: boolean } | undefined;
    const pre = JSON.stringify(t['pre_tokenizer'] ?? null);
    if (model?.type !== 'BPE' || model.byte_fallback || !model.vocab || !pre.includes('ByteLevel')) throw new MoaError(`${file}: only byte-level BPE tokenizers (GPT-2 style) are exported to GGUF yet`);
    tokens = [];
    for (const [s, id] of Object.entries(model.vocab)) tokens[id] = s;
    merges = (model.merges ?? []).map((m) => (Array.isArray(m) ? m.join(' ') : m));
  }
  const types = tokens.map(() => TOKEN_NORMAL);
  for (const a of added) {
    tokens[a.id] = a.content;
    types[a.id] = a.special === false ? TOKEN_NORMAL : TOKEN_CONTROL;
  }
  for (let i = 0; i < base.vocabSize; i++) {
    if (tokens[i] === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = TOKEN_CONTROL;
    }
  }
  return {
    'tokenizer.ggml.model': 'gpt2',
    'tokenizer.ggml.pre': 'default',
    'tokenizer.ggml.tokens': { strings: tokens.slice(0, base.vocabSize) },
    'tokenizer.ggml.token_type': { i32s: types.slice(0, base.vocabSize) },
    'tokenizer.ggml.merges': { strings: merges },
    ...(tok.bosId !== null ? { 'tokenizer.ggml.bos_token_id': { u32: tok.bosId } } : {}),
    'tokenizer.ggml.eos_token_id': { u32: tok.eosId },
    'tokenizer.ggml.add_bos_token': { bool: tok.bosId !== null },
  };
}

/** Writes the base model as one GGUF file that llama.cpp (and so Ollama) loads. */
export function exportBaseGguf(base: BaseModelInfo, file: string, type: GgmlType): void {
  const weights = join(base.dir, 'model.safetensors');
  if (!existsSync(weights)) throw new MoaError(`${weights}: missing (sharded checkpoints are not exported to GGUF yet)`);
  const st: SafetensorsFile = readSafetensors(weights, Number.MAX_SAFE_INTEGER);
  const infos: Omit<GgufTensor, 'data'>[] = [];
  const source = new Map<string, { key: string; reorder?: boolean }>();
  const add = (name: string, key: string, reorder = false) => {
    const info = st.tensors.get(key);
    if (!info) throw new MoaError(`${weights}: missing ${key}`);
    // 1-D tensors (norms) stay f32, as llama.cpp's converter keeps them.
    infos.push({ name, shape: info.shape, type: info.shape.length === 1 ? 'f32' : type });
    source.set(name, { key, reorder });
  };
  add('token_embd.weight', 'model.embed_tokens.weight');
  for (let l = 0; l < base.numLayers; l++) {
    for (const [hf, gg] of Object.entries(LAYER_TENSORS)) add(`blk.${l}.${gg}`, `model.layers.${l}.${hf}`, hf === 'self_attn.q_proj.weight' || hf === 'self_attn.k_proj.weight');
  }
  add('output_norm.weight', 'model.norm.weight');
  if (!base.tiedEmbeddings) add('output.weight', 'lm_head.weight');
  const fileType = type === 'f32' ? 0 : 1;
  const name = base.name.replace(/^builtin:/, '');
  writeGguf(file, { ...llamaMetadata(base), 'general.type': 'model', 'general.name': name, 'general.file_type': { u32: fileType }, ...tokenizerMetadata(base) }, infos, (n) => {
    const src = source.get(n)!;
    const data = tensorToFloat32(st, src.key);
    const shape = st.tensors.get(src.key)!.shape;
    return src.reorder ? interleaveRows(data, shape[0]!, shape[1]!, base.headDim) : data;
  });
}
