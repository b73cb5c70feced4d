// Our engine side by side with llama.cpp (issue #20 §2): the same weights in both (our ONNX
// export; the GGUF our exporter writes, f32), one expert attached in both (llama.cpp applies it as
// its runtime LoRA), the same thread count, interleaved in one run. Per model: time to first
// token for 256- and 1,024-token prompts and greedy decode tokens/s, ours ÷ theirs.
// Models: the built-in moa-tiny, and random-weight models of SmolLM-135M's and Qwen2-0.5B's
// shapes (speed does not depend on the values). Run: npm run bench:llama-cpp [-- --quick]
// (needs .venv for the model folders and the ONNX export; node-llama-cpp from
// scripts/llama-cpp.mjs). Prints a table; writes nothing into the repository.
import { cpus, loadavg, tmpdir } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadExpertWeights } from '../../src/core/adapters/store';
import { exportExpertGguf } from '../../src/core/gguf/adapter';
import { exportBaseGguf } from '../../src/core/gguf/llama';
import { OnnxEngine, decodeThreads } from '../../src/core/inference/engine';
import { stackExperts } from '../../src/core/inference/expertStack';
import { ensureOnnxExport } from '../../src/core/inference/export';
import { readOnnxModelInfo } from '../../src/core/inference/modelInfo';
import { seededRandom } from '../../src/core/inference/sampling';
import { readBaseModel } from '../../src/core/models/base';
import { productLayout, workspaceLayout } from '../../src/core/paths';
import { choosePython } from '../../src/core/trainer/python';
import { figure, quick } from './figures';
import { median } from './stats';
import { SHAPES, ours, writeExpert, writeShape, type Timing } from './shapes';
import { llamaCpp, theirs } from './llamaCpp';

const root = resolve(__dirname, '..', '..');
const python = choosePython(root).command;
const DECODE = quick ? 16 : 64;
const ROUNDS = quick ? 1 : 3;
const PROMPTS = quick ? [256] : [256, 1024];

async function main(): Promise<void> {
  const load0 = loadavg()[0]!;
  const ws = mkdtempSync(join(tmpdir(), 'moa-bench-llama-'));
  const llama = await llamaCpp(root);
  const rows: string[] = [];
  try {
    const models: [string, string][] = [['moa-tiny', join(root, 'models', 'moa-tiny')]];
    for (const [name, fields] of Object.entries(SHAPES)) {
      if (quick) continue; // moa-tiny only: every path runs, in seconds
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
        await ours(engine, stack, prompt.slice(0, 16), 0); // warm both
        await theirs(model, adapter, threads, prompt.slice(0, 16), 0);
        for (let i = 0; i < ROUNDS; i++) {
          a.push(await ours(engine, stack, prompt, DECODE));
          b.push(await theirs(model, adapter, threads, prompt, DECODE));
          c.push(await theirs(model, undefined, threads, prompt, DECODE));
          d.push(await theirs(q8Model, adapter, threads, prompt, DECODE));
        }
        const ttft = [a, b, c, d].map((x) => median(x.map((t) => t.ttftMs)));
        const tps = [a, b, c, d].map((x) => median(x.map((t) => t.decodeTps)));
        rows.push(`| ${name} | ${threads} | ${len} | ${ttft[0]!.toFixed(0)} ms | ${ttft[1]!.toFixed(0)} ms (${ttft[2]!.toFixed(0)}) | ${(ttft[0]! / ttft[1]!).toFixed(2)} | ${tps[0]!.toFixed(1)} | ${tps[1]!.toFixed(1)} (${tps[2]!.toFixed(1)}) | ${(tps[0]! / tps[1]!).toFixed(2)} | ${ttft[3]!.toFixed(0)} ms · ${tps[3]!.toFixed(1)} tok/s |`);
        console.log(rows[rows.length - 1]);
        const what = `${name}, ${len}-token prompt, f32, one expert, ${threads} thread(s)`;
        figure({ bench: 'llama.cpp', figure: `time to first token, ${what}`, ours: ttft[0]!, unit: 'ms', comparison: 'llama.cpp f32 + the same LoRA', theirs: ttft[1]!, ratio: ttft[0]! / ttft[1]!, target: '≤ 1.0× (no worse)', met: ttft[0]! <= ttft[1]! });
        figure({ bench: 'llama.cpp', figure: `decode, ${what}`, ours: tps[0]!, unit: 'tok/s', comparison: 'llama.cpp f32 + the same LoRA', theirs: tps[1]!, ratio: tps[0]! / tps[1]!, target: '≥ 1.0×', met: tps[0]! >= tps[1]! });
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
