// llama.cpp through node-llama-cpp (its prebuilt CPU binary, installed by scripts/llama-cpp.mjs
// into bench/llama-cpp/, never the root package): the third-party runtime our GGUF files are
// held to. Its own types stay in its folder; this is the slice the tests use.
import { join } from 'node:path';
import { repoRoot } from './tmp';

export interface LlamaModel {
  createContext(opts: Record<string, unknown>): Promise<{ getSequence(): { evaluate(tokens: number[], opts: { temperature: number }): AsyncIterable<number> }; dispose(): Promise<void> }>;
  /** `specialTokens`: text that spells a special token becomes its id (as Hugging Face tokenizers do). */
  tokenize(text: string, specialTokens?: boolean): number[];
  dispose(): Promise<void>;
}
export interface Llama {
  loadModel(opts: { modelPath: string }): Promise<LlamaModel>;
}

export async function loadLlamaCpp(): Promise<Llama> {
  const lib = join(repoRoot(), 'bench', 'llama-cpp', 'node_modules', 'node-llama-cpp', 'dist', 'index.js');
  const { getLlama } = (await import(lib)) as { getLlama(o: Record<string, unknown>): Promise<Llama> };
  // Never build: the prebuilt binary or a clear failure.
  return getLlama({ gpu: false, build: 'never', logLevel: 'error' });
}

/**
 * `steps` greedy tokens after `prompt` (stopping before `eos`, as our engine does), with an f32 KV
 * cache (llama.cpp's default f16 cache would round what our engine keeps in f32) and, if given,
 * one LoRA adapter at `scale`.
 */
export async function llamaGreedy(model: LlamaModel, prompt: number[], steps: number, eos: number, adapter?: { file: string; scale: number }): Promise<number[]> {
  const ctx = await model.createContext({
    contextSize: 256, threads: 1, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
    ...(adapter ? { lora: { adapters: [{ filePath: adapter.file, scale: adapter.scale }] } } : {}),
  });
  try {
    const out: number[] = [];
    for await (const t of ctx.getSequence().evaluate(prompt, { temperature: 0 })) {
      if (t === eos) break;
      if (out.push(t) === steps) break;
    }
    return out;
  } finally {
    await ctx.dispose();
  }
}
