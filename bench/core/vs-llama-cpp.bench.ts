// Our engine side by side with llama.cpp (issue #20 §2): the same weights in both (our ONNX
// export; the GGUF our exporter writes, f32), one expert attached in both (llama.cpp applies it as
// its runtime LoRA), the same thread count, interleaved in one run. Per model: time to first
// token for 256- and 1,024-token prompts and greedy decode tokens/s, ours ÷ theirs.
// Models: the built-in moa-tiny, and random-weight models of SmolLM-135M's and Qwen2-0.5B's
// shapes (speed does not depend on the values). Run: npm run bench:llama-cpp [-- --quick]
// (needs .venv for the model folders and the ONNX export; node-llama-cpp from
// scripts/llama-cpp.mjs). Prints a table; writes nothing into the repository.
import { spawnSync } from 'node:child_process';
import { cpus, loadavg, tmpdir } from 'node:os';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeSafetensorsF32 } from '../../src/core/adapters/safetensors';
import { loraKey } from '../../src/core/adapters/peftKeys';
import { loadExpertWeights, moduleDims } from '../../src/core/adapters/store';
import { exportExpertGguf } from '../../src/core/gguf/adapter';
import { exportBaseGguf } from '../../src/core/gguf/llama';
import { OnnxEngine, decodeThreads } from '../../src/core/inference/engine';
import { stackExperts, type ExpertStack } from '../../src/core/inference/expertStack';
import { ensureOnnxExport } from '../../src/core/inference/export';
import { readOnnxModelInfo } from '../../src/core/inference/modelInfo';
import { seededRandom } from '../../src/core/inference/sampling';
import { readBaseModel, type BaseModelInfo } from '../../src/core/models/base';
import { productLayout, workspaceLayout } from '../../src/core/paths';
import { choosePython } from '../../src/core/trainer/python';
import { median } from './stats';

const root = resolve(__dirname, '..', '..');
const quick = process.argv.includes('--quick');
const python = choosePython(root).command;
const DECODE = quick ? 16 : 64;
const ROUNDS = quick ? 1 : 3;
const PROMPTS = quick ? [256] : [256, 1024];

interface LlamaModel {
  createContext(o: Record<string, unknown>): Promise<{ getSequence(): { evaluate(t: number[], o: { temperature: number }): AsyncIterable<number> }; dispose(): Promise<void> }>;
  dispose(): Promise<void>;
}

// The shapes (bench/common.py's ModelConfig fields), random weights; byte tokenizer at the model's vocabulary.
const SHAPES: Record<string, Record<string, unknown>> = {
  'SmolLM-135M shape': { vocab_size: 49152, hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3, head_dim: 64, rms_norm_eps: 1e-5, rope_theta: 10000.0, max_position_embeddings: 2048, tie_word_embeddings: true, bos_token_id: 256, eos_token_id: 257 },
  'Qwen2-0.5B shape': { vocab_size: 151936, hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, head_dim: 64, rms_norm_eps: 1e-6, rope_theta: 1000000.0, max_position_embeddings: 32768, tie_word_embeddings: true, model_type: 'qwen2', qkv_bias: true, bos_token_id: 256, eos_token_id: 257 },
};

function writeShape(dir: string, fields: Record<string, unknown>): void {
  mkdirSync(dir, { recursive: true });
  const py = `import json, sys\nsys.path.insert(0, ${JSON.stringify(join(root, 'bench'))})\nfrom pathlib import Path\nfrom common import write_model\nfrom moa_trainer.model import ModelConfig\nwrite_model(Path(sys.argv[1]), ModelConfig(**json.loads(sys.argv[2])))\n`;
  const r = spawnSync(python, ['-c', py, dir, JSON.stringify(fields)], { encoding: 'utf8', env: { ...process.env, PYTHONPATH: join(root, 'trainer') } });
  if (r.status !== 0) throw new Error(`writing ${dir}: ${r.stderr}`);
  const tok = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ version: '1.0', moa: { type: 'bytes', vocab_size: fields['vocab_size'], bos_token_id: 256, eos_token_id: 257 }, added_tokens: [tok(256, '<s>'), tok(257, '</s>')] }));
}

/** A random rank-8 expert on q, k, v and o, in PEFT layout. */
function writeExpert(dir: string, base: BaseModelInfo): void {
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

interface Timing {
  ttftMs: number;
  decodeTps: number;
}

async function ours(engine: OnnxEngine, stack: ExpertStack, prompt: number[], decode: boolean): Promise<Timing> {
  const t0 = performance.now();
  let first = 0;
  let n = 0;
  await engine.generate(prompt, {
    stack, expertWeights: [1], maxNewTokens: decode ? DECODE + 1 : 1, temperature: 0, topP: 1, seed: 0, stopTokens: [],
    shouldStop: (g) => {
      if (g.length === 1) first = performance.now();
      n = g.length;
      return false;
    },
  });
  const end = performance.now();
  return { ttftMs: first - t0, decodeTps: decode ? (n - 1) / ((end - first) / 1000) : NaN };
}

async function theirs(model: LlamaModel, adapter: string | undefined, threads: number, prompt: number[], decode: boolean): Promise<Timing> {
  const ctx = await model.createContext({ contextSize: 2048, threads, batchSize: 1024, ...(adapter ? { lora: { adapters: [{ filePath: adapter, scale: 1 }] } } : {}) });
  try {
    const t0 = performance.now();
    let first = 0;
    let n = 0;
    for await (const _ of ctx.getSequence().evaluate(prompt, { temperature: 0 })) {
      if (++n === 1) first = performance.now();
      if (n === (decode ? DECODE + 1 : 1)) break;
    }
    const end = performance.now();
    return { ttftMs: first - t0, decodeTps: decode ? (n - 1) / ((end - first) / 1000) : NaN };
  } finally {
    await ctx.dispose();
  }
}

async function main(): Promise<void> {
  const load0 = loadavg()[0]!;
  const ws = mkdtempSync(join(tmpdir(), 'moa-bench-llama-'));
  const { getLlama } = (await import(join(root, 'bench', 'llama-cpp', 'node_modules', 'node-llama-cpp', 'dist', 'index.js'))) as { getLlama(o: Record<string, unknown>): Promise<{ loadModel(o: { modelPath: string }): Promise<LlamaModel> }> };
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
  const rows: string[] = [];
  try {
    const models: [string, string][] = [['moa-tiny', join(root, 'models', 'moa-tiny')]];
    for (const [name, fields] of Object.entries(SHAPES)) {
      if (quick && name.startsWith('Qwen2')) continue;
      const dir = join(ws, name.replace(/\W+/g, '-'));
      writeShape(dir, fields);
      models.push([name, dir]);
    }
    for (const [name, dir] of models) {
      const base = readBaseModel(dir, dir);
      const layout = workspaceLayout(join(ws, `w-${base.hiddenSize}`));
      const expertDir = join(layout.expertsDir, 'e');
      writeExpert(expertDir, base);
      const exp = await ensureOnnxExport(layout, productLayout(root), dir, python);
      const info = readOnnxModelInfo(exp.infoPath);
      // Our completions' thread choice (one thread below a size, all cores above); llama.cpp gets the same.
      const threads = decodeThreads(info) || cpus().length;
      const engine = await OnnxEngine.load(exp.onnxPath, info, threads);
      const stack = stackExperts(info, [loadExpertWeights(expertDir, 'e', base)]);
      const gguf = join(ws, `${base.hiddenSize}.gguf`);
      exportBaseGguf(base, gguf, 'f32');
      const adapter = join(ws, `${base.hiddenSize}-e.gguf`);
      exportExpertGguf(expertDir, 'e', base, adapter);
      const model = await llama.loadModel({ modelPath: gguf });
      // llama.cpp's usual type for such models (Ollama's q8_0): ours has no int8 graph yet (#20 §1).
      const q8 = join(ws, `${base.hiddenSize}-q8_0.gguf`);
      exportBaseGguf(base, q8, 'q8_0');
      const q8Model = await llama.loadModel({ modelPath: q8 });
      const rand = seededRandom(1);
      for (const wanted of PROMPTS) {
        // moa-tiny takes 1,024 positions in all: its longest prompt leaves room for the decode.
        const len = Math.min(wanted, info.maxPositions - DECODE - 2);
        const prompt = [256, ...Array.from({ length: len - 1 }, () => 32 + Math.floor(rand() * 90))];
        const a: Timing[] = [];
        const b: Timing[] = [];
        const c: Timing[] = [];
        const d: Timing[] = [];
        await ours(engine, stack, prompt.slice(0, 16), false); // warm both
        await theirs(model, adapter, threads, prompt.slice(0, 16), false);
        for (let i = 0; i < ROUNDS; i++) {
          a.push(await ours(engine, stack, prompt, true));
          b.push(await theirs(model, adapter, threads, prompt, true));
          c.push(await theirs(model, undefined, threads, prompt, true));
          d.push(await theirs(q8Model, adapter, threads, prompt, true));
        }
        const ttft = [a, b, c, d].map((x) => median(x.map((t) => t.ttftMs)));
        const tps = [a, b, c, d].map((x) => median(x.map((t) => t.decodeTps)));
        rows.push(`| ${name} | ${threads} | ${len} | ${ttft[0]!.toFixed(0)} ms | ${ttft[1]!.toFixed(0)} ms (${ttft[2]!.toFixed(0)}) | ${(ttft[0]! / ttft[1]!).toFixed(2)} | ${tps[0]!.toFixed(1)} | ${tps[1]!.toFixed(1)} (${tps[2]!.toFixed(1)}) | ${(tps[0]! / tps[1]!).toFixed(2)} | ${ttft[3]!.toFixed(0)} ms · ${tps[3]!.toFixed(1)} tok/s |`);
        console.log(rows[rows.length - 1]);
      }
      await engine.release();
      await model.dispose();
      await q8Model.dispose();
    }
  } finally {
    rmSync(ws, { recursive: true, force: true });
  }
  console.log(`\nours vs llama.cpp, f32 weights, one rank-8 expert on q/k/v/o in both, ${DECODE} greedy tokens, median of ${ROUNDS} interleaved rounds`);
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}; load average ${load0.toFixed(2)} at start, ${loadavg()[0]!.toFixed(2)} at end`);
  console.log('(llama.cpp without the adapter in brackets: what its runtime LoRA costs it)');
  console.log('| model | threads | prompt | TTFT ours | TTFT llama.cpp (no LoRA) | ours ÷ theirs (lower is better) | decode tok/s ours | llama.cpp (no LoRA) | ours ÷ theirs (higher is better) | llama.cpp q8_0 + LoRA: TTFT · decode |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(r);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
