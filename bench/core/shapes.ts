// Model shapes and timing shared by the engine benches: random-weight model folders of real
// models' shapes (speed does not depend on the values), a random expert, our engine's timing.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeSafetensorsF32 } from '../../src/core/adapters/safetensors';
import { loraKey } from '../../src/core/adapters/peftKeys';
import { moduleDims } from '../../src/core/adapters/store';
import type { OnnxEngine } from '../../src/core/inference/engine';
import type { ExpertStack } from '../../src/core/inference/expertStack';
import { seededRandom } from '../../src/core/inference/sampling';
import type { BaseModelInfo } from '../../src/core/models/base';
import { choosePython } from '../../src/core/trainer/python';

const root = resolve(__dirname, '..', '..');
const python = choosePython(root).command;

// The shapes (bench/common.py's ModelConfig fields), random weights; byte tokenizer at the model's vocabulary.
export const SHAPES: Record<string, Record<string, unknown>> = {
  'SmolLM-135M shape': { vocab_size: 49152, hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3, head_dim: 64, rms_norm_eps: 1e-5, rope_theta: 10000.0, max_position_embeddings: 2048, tie_word_embeddings: true, bos_token_id: 256, eos_token_id: 257 },
  'Qwen2-0.5B shape': { vocab_size: 151936, hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, head_dim: 64, rms_norm_eps: 1e-6, rope_theta: 1000000.0, max_position_embeddings: 32768, tie_word_embeddings: true, model_type: 'qwen2', qkv_bias: true, bos_token_id: 256, eos_token_id: 257 },
};

/** What `--quick` runs instead: a small model of the same kind, so every path runs in seconds. */
export const QUICK_SHAPES: Record<string, Record<string, unknown>> = {
  'small shape (quick)': { vocab_size: 512, hidden_size: 128, intermediate_size: 256, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 32, rms_norm_eps: 1e-5, rope_theta: 10000.0, max_position_embeddings: 2048, tie_word_embeddings: true, bos_token_id: 256, eos_token_id: 257 },
};

export function writeShape(dir: string, fields: Record<string, unknown>): void {
  mkdirSync(dir, { recursive: true });
  const py = `import json, sys\nsys.path.insert(0, ${JSON.stringify(join(root, 'bench'))})\nfrom pathlib import Path\nfrom common import write_model\nfrom moa_trainer.model import ModelConfig\nwrite_model(Path(sys.argv[1]), ModelConfig(**json.loads(sys.argv[2])))\n`;
  const r = spawnSync(python, ['-c', py, dir, JSON.stringify(fields)], { encoding: 'utf8', env: { ...process.env, PYTHONPATH: join(root, 'trainer') } });
  if (r.status !== 0) throw new Error(`writing ${dir}: ${r.stderr}`);
  const tok = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ version: '1.0', moa: { type: 'bytes', vocab_size: fields['vocab_size'], bos_token_id: 256, eos_token_id: 257 }, added_tokens: [tok(256, '<s>'), tok(257, '</s>')] }));
}

/** A random rank-8 expert on q, k, v and o, in PEFT layout. */
export function writeExpert(dir: string, base: BaseModelInfo): void {
  const dims = moduleDims(base);
  const rand = seededRandom(5);
  const r = 8;
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (let l = 0; l < base.numLayers; l++) {
    for (const m of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) {
      const [inF, outF] = dims[m]!;
      tensors.set(loraKey(l, m, 'A'), { shape: [r, inF], data: Float32Array.from({ length: r * inF }, () => (rand() - 0.5) * 0.02) });
      tensors.set(loraKey(l, m, 'B'), { shape: [outF, r], data: Float32Array.from({ length: outF * r }, () => (rand() - 0.5) * 0.02) });
    }
  }
  mkdirSync(dir, { recursive: true });
  writeSafetensorsF32(join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r, lora_alpha: 16, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] }));
}

export interface Timing {
  ttftMs: number;
  decodeTps: number;
}

/** Time to the first token and decode tokens/s of `decode` greedy tokens after it (0: the first token only). */
export async function ours(engine: OnnxEngine, stack: ExpertStack, prompt: number[], decode: number): Promise<Timing & { tokens: number[] }> {
  const t0 = performance.now();
  let first = 0;
  let n = 0;
  let tokens: number[] = [];
  await engine.generate(prompt, {
    stack, expertWeights: [1], maxNewTokens: decode + 1, temperature: 0, topP: 1, seed: 0, stopTokens: [],
    shouldStop: (g) => {
      if (g.length === 1) first = performance.now();
      n = g.length;
      tokens = [...g];
      return false;
    },
  });
  const end = performance.now();
  return { ttftMs: first - t0, decodeTps: decode ? (n - 1) / ((end - first) / 1000) : NaN, tokens };
}

