// llama.cpp through node-llama-cpp (bench/llama-cpp, installed by scripts/llama-cpp.mjs): its
// prebuilt CPU binary, never built here.
import { join } from 'node:path';
import type { Timing } from './shapes';

export interface LlamaModel {
  createContext(o: Record<string, unknown>): Promise<{ getSequence(): { evaluate(t: number[], o: { temperature: number }): AsyncIterable<number> }; dispose(): Promise<void> }>;
  dispose(): Promise<void>;
}

/** node-llama-cpp's llama.cpp on the CPU. */
export async function llamaCpp(root: string): Promise<{ loadModel(o: { modelPath: string }): Promise<LlamaModel> }> {
  const { getLlama } = (await import(join(root, 'bench', 'llama-cpp', 'node_modules', 'node-llama-cpp', 'dist', 'index.js'))) as { getLlama(o: Record<string, unknown>): Promise<{ loadModel(o: { modelPath: string }): Promise<LlamaModel> }> };
  return getLlama({ gpu: false, build: 'never', logLevel: 'error' });
}

/** llama.cpp's time to the first token and decode tokens/s, with `adapter` as its runtime LoRA. */
export async function theirs(model: LlamaModel, adapter: string | undefined, threads: number, prompt: number[], decode: number): Promise<Timing> {
  const ctx = await model.createContext({ contextSize: 2048, threads, batchSize: 1024, ...(adapter ? { lora: { adapters: [{ filePath: adapter, scale: 1 }] } } : {}) });
  try {
    const t0 = performance.now();
    let first = 0;
    let n = 0;
    for await (const _ of ctx.getSequence().evaluate(prompt, { temperature: 0 })) {
      if (++n === 1) first = performance.now();
      if (n === decode + 1) break;
    }
    const end = performance.now();
    return { ttftMs: first - t0, decodeTps: decode ? (n - 1) / ((end - first) / 1000) : NaN };
  } finally {
    await ctx.dispose();
  }
}
