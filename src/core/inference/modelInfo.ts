import { MoaError } from '../util/errors';
import { readJsonObject } from '../util/json';

/** `model.json` written beside the ONNX export (trainer/PROTOCOL.md, `export`). */
export interface OnnxModelInfo {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  hiddenSize: number;
  vocabSize: number;
  targetModules: string[];
  modules: Record<string, { in: number; out: number }>;
  bosTokenId: number;
  eosTokenId: number;
  /** Positions the graph takes (prompt + generated): its rotary tables' length. */
  maxPositions: number;
  /** Attention is GroupQueryAttention, which writes the KV cache in place into a buffer given as input and output. */
  kvInPlace: boolean;
}

export function readOnnxModelInfo(file: string): OnnxModelInfo {
  const j = readJsonObject(file, 'The ONNX export is incomplete; delete its folder to re-export.');
  const int = (k: string): number => {
    const v = j[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new MoaError(`${file}: "${k}" must be a non-negative integer`);
    return v;
  };
  const tm = j['target_modules'];
  const mods = j['modules'];
  if (!Array.isArray(tm) || typeof mods !== 'object' || mods === null) throw new MoaError(`${file}: "target_modules" and "modules" are required`);
  return {
    numLayers: int('num_layers'),
    numKvHeads: int('num_kv_heads'),
    headDim: int('head_dim'),
    hiddenSize: int('hidden_size'),
    vocabSize: int('vocab_size'),
    targetModules: tm as string[],
    modules: mods as Record<string, { in: number; out: number }>,
    // A base model without BOS/EOS has null here: -1 never matches a generated token.
    bosTokenId: j['bos_token_id'] === null ? -1 : int('bos_token_id'),
    eosTokenId: j['eos_token_id'] === null ? -1 : int('eos_token_id'),
    maxPositions: int('max_positions'),
    kvInPlace: j['kv_in_place'] === true,
  };
}
