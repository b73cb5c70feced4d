import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors, tensorToFloat32, type SafetensorsFile } from '../adapters/safetensors';
import type { BaseModelInfo } from '../models/base';
import { MoaError } from '../util/errors';
import { loadTokenizer } from '../tokenizer/load';
import { isObject, readJsonObject } from '../util/json';
import { blockQuantized, writeGguf, type GgmlType, type GgufTensor, type MetaValue } from './write';

/**
 * A base model (the built-in moa-tiny, Hugging Face Llama, Mistral, SmolLM and Qwen2 folders) as
 * llama.cpp reads it: its `<arch>.*` metadata, tensors renamed to llama.cpp's names, and for the
 * llama architecture the rows of the query and key projections reordered as llama.cpp's converter
 * does (its rotary embedding pairs neighbouring dimensions; transformers pairs a head's halves).
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

function num(c: Record<string, unknown>, k: string, fallback: number, file: string): number {
  const v = c[k] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new MoaError(`${file}: "${k}" must be a number`);
  return v;
}

interface Rope {
  type: string;
  theta: number;
  factor?: number;
  [k: string]: unknown;
}

/** RoPE as config.json gives it: `rope_scaling` (transformers 4) or `rope_parameters` (5), as the trainer reads it. */
function ropeOf(c: Record<string, unknown>): Rope {
  const r = [c['rope_scaling'], c['rope_parameters']].find(isObject) ?? {};
  const type = typeof r['rope_type'] === 'string' ? r['rope_type'] : typeof r['type'] === 'string' ? r['type'] : 'default';
  const theta = typeof c['rope_theta'] === 'number' ? c['rope_theta'] : typeof r['rope_theta'] === 'number' ? r['rope_theta'] : 10000;
  return { ...r, type, theta, factor: typeof r['factor'] === 'number' ? r['factor'] : undefined };
}

/**
 * Llama 3's RoPE as llama.cpp takes it: one factor per rotary frequency in a `rope_freqs.weight`
 * tensor (1 for short wavelengths, `factor` for long ones, smoothed between), as its converter
 * computes them.
 */
export function llama3RopeFactors(rope: Rope, headDim: number): Float32Array {
  const factor = rope.factor ?? 8;
  const low = typeof rope['low_freq_factor'] === 'number' ? rope['low_freq_factor'] : 1;
  const high = typeof rope['high_freq_factor'] === 'number' ? rope['high_freq_factor'] : 4;
  const old = typeof rope['original_max_position_embeddings'] === 'number' ? rope['original_max_position_embeddings'] : 8192;
  const lowWavelen = old / low;
  const highWavelen = old / high;
  return Float32Array.from({ length: headDim / 2 }, (_, i) => {
    const wavelen = (2 * Math.PI) / rope.theta ** (-(2 * i) / headDim);
    if (wavelen < highWavelen) return 1;
    if (wavelen > lowWavelen) return factor;
    const smooth = (old / wavelen - low) / (high - low);
    return 1 / ((1 - smooth) / factor + smooth);
  });
}

/** How a base maps onto a llama.cpp architecture. */
export interface GgufArch {
  name: 'llama' | 'qwen2';
  /** llama: query and key rows interleaved per head (llama.cpp's rotary pairing); qwen2: as they are. */
  reorderQK: boolean;
  metadata: Record<string, MetaValue>;
  /** Llama 3 RoPE's per-frequency factors (the `rope_freqs.weight` tensor), when the base uses it. */
  ropeFactors?: Float32Array;
}

/**
 * The llama.cpp architecture of a base, with its hyperparameters as `<arch>.*` metadata; what
 * llama.cpp would compute differently is refused by name (the file and the option).
 */
export function ggufArch(base: BaseModelInfo): GgufArch {
  const file = join(base.dir, 'config.json');
  const c = readJsonObject(file);
  const name = base.modelType === 'qwen2' ? 'qwen2' : base.modelType === 'llama' || base.modelType === 'mistral' ? 'llama' : undefined;
  if (!name) throw new MoaError(`${file}: model_type "${base.modelType}" has no GGUF export yet (llama, mistral and qwen2 do)`);
  if (c['mlp_bias'] === true) throw new MoaError(`${file}: "mlp_bias": llama.cpp's ${name} architecture has no MLP biases`);
  const window = c['sliding_window'];
  const windowed = name === 'qwen2' ? c['use_sliding_window'] === true : typeof window === 'number' && window < num(c, 'max_position_embeddings', 2048, file);
  if (windowed) throw new MoaError(`${file}: "sliding_window" ${JSON.stringify(window)}: llama.cpp's ${name} architecture attends to the whole context`);
  const rope = ropeOf(c);
  if (rope.type !== 'default' && rope.type !== 'linear' && rope.type !== 'llama3') throw new MoaError(`${file}: rope_scaling "${rope.type}" is not exported to GGUF yet (default, linear and llama3 are)`);
  if (rope.type !== 'default' && typeof rope.factor !== 'number') throw new MoaError(`${file}: rope_scaling "${rope.type}" needs a numeric "factor"`);
  const k = (key: string) => `${name}.${key}`;
  return {
    name,
    reorderQK: name === 'llama',
    ...(rope.type === 'llama3' ? { ropeFactors: llama3RopeFactors(rope, base.headDim) } : {}),
    metadata: {
      'general.architecture': name,
      [k('context_length')]: { u32: num(c, 'max_position_embeddings', 2048, file) },
      [k('embedding_length')]: { u32: base.hiddenSize },
      [k('block_count')]: { u32: base.numLayers },
      [k('feed_forward_length')]: { u32: base.intermediateSize },
      [k('attention.head_count')]: { u32: base.numHeads },
      [k('attention.head_count_kv')]: { u32: base.numKvHeads },
      [k('attention.key_length')]: { u32: base.headDim },
      [k('attention.value_length')]: { u32: base.headDim },
      [k('rope.dimension_count')]: { u32: base.headDim },
      [k('rope.freq_base')]: { f32: rope.theta },
      [k('attention.layer_norm_rms_epsilon')]: { f32: num(c, 'rms_norm_eps', 1e-6, file) },
      [k('vocab_size')]: { u32: base.vocabSize },
      ...(rope.type === 'linear' ? { [k('rope.scaling.type')]: 'linear', [k('rope.scaling.factor')]: { f32: rope.factor! } } : {}),
    },
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

/** The split rules of Llama 3's and Qwen2's tokenizers (they differ in how digits group). */
const LLAMA3_SPLIT = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const QWEN2_SPLIT = LLAMA3_SPLIT.replace(String.raw`\p{N}{1,3}`, String.raw`\p{N}`);

/**
 * llama.cpp's name for how a byte-level BPE tokenizer splits text before its merges
 * (`tokenizer.ggml.pre`): GPT-2's rule, Llama 3's, Qwen2's, or GPT-2's with single digits
 * (StarCoder, SmolLM). Another rule would tokenize differently in llama.cpp: refused.
 */
export function preTokenizerName(pre: unknown, file: string): string {
  const j = JSON.stringify(pre ?? null);
  const byteLevel = (p: unknown) => typeof p === 'object' && p !== null && (p as { type?: unknown }).type === 'ByteLevel';
  if (byteLevel(pre) && (pre as { use_regex?: unknown }).use_regex !== false) return 'gpt-2';
  const seq = (pre as { type?: unknown; pretokenizers?: unknown[] } | null)?.type === 'Sequence' ? ((pre as { pretokenizers?: unknown[] }).pretokenizers ?? []) : [];
  const split = seq.find((p) => (p as { type?: unknown }).type === 'Split') as { pattern?: { Regex?: string } } | undefined;
  if (split?.pattern?.Regex === LLAMA3_SPLIT) return 'llama-bpe';
  if (split?.pattern?.Regex === QWEN2_SPLIT) return 'qwen2';
  const digits = seq.find((p) => (p as { type?: unknown }).type === 'Digits') as { individual_digits?: boolean } | undefined;
  if (seq.length === 2 && digits?.individual_digits === true && seq.some(byteLevel)) return 'starcoder';
  throw new MoaError(`${file}: pre_tokenizer ${j.slice(0, 160)} has no llama.cpp equivalent this export knows (GPT-2, Llama 3, Qwen2, StarCoder/SmolLM): llama.cpp would split text differently`);
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
  // moa-tiny has no merges: every byte is its own token, whatever the split.
  let pre = 'default';
  const moa = t['moa'] as { type?: string } | undefined;
  if (moa?.type === 'bytes') {
    tokens = byteChars();
  } else {
    const model = t['model'] as { type?: string; vocab?: Record<string, number>; merges?: (string | string[])[]; byte_fallback?: boolean } | undefined;
    if (model?.type !== 'BPE' || model.byte_fallback || !model.vocab || !JSON.stringify(t['pre_tokenizer'] ?? null).includes('ByteLevel')) {
      throw new MoaError(`${file}: only byte-level BPE tokenizers (GPT-2, Llama 3, Qwen2, SmolLM style) are exported to GGUF yet; SentencePiece-style ones (Llama 2, Mistral) are not`);
    }
    pre = preTokenizerName(t['pre_tokenizer'], file);
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
    'tokenizer.ggml.pre': pre,
    'tokenizer.ggml.tokens': { strings: tokens.slice(0, base.vocabSize) },
    'tokenizer.ggml.token_type': { i32s: types.slice(0, base.vocabSize) },
    'tokenizer.ggml.merges': { strings: merges },
    ...(tok.bosId !== null ? { 'tokenizer.ggml.bos_token_id': { u32: tok.bosId } } : {}),
    'tokenizer.ggml.eos_token_id': { u32: tok.eosId },
    'tokenizer.ggml.add_bos_token': { bool: tok.bosId !== null },
  };
}

/** Writes the base model as one GGUF file that llama.cpp (and so Ollama) loads. */
export function exportBaseGguf(base: BaseModelInfo, file: string, type: GgmlType, stop?: () => boolean): void {
  const weights = join(base.dir, 'model.safetensors');
  if (!existsSync(weights)) throw new MoaError(`${weights}: missing (sharded checkpoints are not exported to GGUF yet)`);
  const st: SafetensorsFile = readSafetensors(weights, Number.MAX_SAFE_INTEGER);
  const infos: Omit<GgufTensor, 'data'>[] = [];
  const source = new Map<string, { key: string; reorder?: boolean }>();
  const add = (name: string, key: string, reorder = false) => {
    const info = st.tensors.get(key);
    if (!info) throw new MoaError(`${weights}: missing ${key}`);
    // 1-D tensors (norms) stay f32, as llama.cpp's converter keeps them.
    // Rows that do not split into q8_0's blocks of 32 fall back to f16, as llama.cpp's converter does.
    const t = info.shape.length === 1 ? 'f32' : blockQuantized(type) && info.shape[info.shape.length - 1]! % 32 !== 0 ? 'f16' : type;
    infos.push({ name, shape: info.shape, type: t });
    source.set(name, { key, reorder });
  };
  const arch = ggufArch(base);
  add('token_embd.weight', 'model.embed_tokens.weight');
  for (let l = 0; l < base.numLayers; l++) {
    for (const [hf, gg] of Object.entries(LAYER_TENSORS)) {
      const qk = arch.reorderQK && (hf.startsWith('self_attn.q_proj') || hf.startsWith('self_attn.k_proj'));
      add(`blk.${l}.${gg}`, `model.layers.${l}.${hf}`, qk);
      // Attention biases (Qwen2's q, k, v; Llama's attention_bias), reordered as their rows are.
      const bias = `model.layers.${l}.${hf.replace(/\.weight$/, '.bias')}`;
      if (hf.startsWith('self_attn.') && st.tensors.has(bias)) add(`blk.${l}.${gg.replace(/\.weight$/, '.bias')}`, bias, qk);
    }
  }
  add('output_norm.weight', 'model.norm.weight');
  if (arch.ropeFactors) infos.push({ name: 'rope_freqs.weight', shape: [arch.ropeFactors.length], type: 'f32' });
  if (!base.tiedEmbeddings) add('output.weight', 'lm_head.weight');
  const fileType = { f32: 0, f16: 1, q4_0: 2, q8_0: 7 }[type]; // llama.cpp's llama_ftype
  const name = base.name.replace(/^builtin:/, '');
  writeGguf(file, { ...arch.metadata, 'general.type': 'model', 'general.name': name, 'general.file_type': { u32: fileType }, ...tokenizerMetadata(base) }, infos, (n) => {
    if (n === 'rope_freqs.weight') return arch.ropeFactors!;
    const src = source.get(n)!;
    const data = tensorToFloat32(st, src.key);
    const shape = st.tensors.get(src.key)!.shape;
    return src.reorder ? interleaveRows(data, shape[0]!, shape[1] ?? 1, base.headDim) : data;
  }, stop);
}
