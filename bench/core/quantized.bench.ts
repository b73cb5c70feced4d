// Weight-only quantized bases (issue #20 §1): the same model exported with f32, int8 and int4
// (MatMulNBits, blocks of 32) weights, one rank-8 expert attached (float, as always), timed in our
// engine next to llama.cpp at q8_0 and q4_0 with the same expert. Per model and prompt: time to first token,
// decode tokens/s, and how many of the greedy tokens match the f32 graph's (random weights: the
// agreement, not the loss, is the quality figure here). Run: npm run bench:quantized [-- --quick]
import { cpus, loadavg, tmpdir } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadExpertWeights } from '../../src/core/adapters/store';
import { exportExpertGguf } from '../../src/core/gguf/adapter';
import { exportBaseGguf } from '../../src/core/gguf/llama';
import { OnnxEngine, decodeThreads } from '../../src/core/inference/engine';
import { stackExperts } from '../../src/core/inference/expertStack';
import { ensureOnnxExport, type WeightType } from '../../src/core/inference/export';
import { readOnnxModelInfo } from '../../src/core/inference/modelInfo';
import { seededRandom } from '../../src/core/inference/sampling';
import { readBaseModel } from '../../src/core/models/base';
import { productLayout, workspaceLayout } from '../../src/core/paths';
import { choosePython } from '../../src/core/trainer/python';
import { figure, quick } from './figures';
import { median } from './stats';
import { QUICK_SHAPES, SHAPES, ours, writeExpert, writeShape } from './shapes';
import { llamaCpp, theirs } from './llamaCpp';

const root = resolve(__dirname, '..', '..');
const python = choosePython(root).command;
const DECODE = quick ? 16 : 32;
const ROUNDS = quick ? 1 : 3;
const PROMPTS = quick ? [256] : [256, 1024];
const TYPES: WeightType[] = ['f32', 'int8', 'int4'];

async function main(): Promise<void> {
  const load0 = loadavg()[0]!;
  const ws = mkdtempSync(join(tmpdir(), 'moa-bench-quant-'));
  const llama = await llamaCpp(root);
  const rows: string[] = [];
  try {
    for (const [name, fields] of Object.entries(quick ? QUICK_SHAPES : SHAPES)) {
      const dir = join(ws, name.replace(/\W+/g, '-'));
      writeShape(dir, fields);
      const base = readBaseModel(dir, dir);
      const layout = workspaceLayout(join(ws, `w-${base.hiddenSize}`));
      const expertDir = join(layout.expertsDir, 'e');
      writeExpert(expertDir, base);
      const engines = new Map<WeightType, OnnxEngine>();
      let stack;
      let threads = 1;
      for (const weights of TYPES) {
        const t0 = performance.now();
        const exp = await ensureOnnxExport(layout, productLayout(root), dir, python, undefined, { weights });
        const info = readOnnxModelInfo(exp.infoPath);
        threads = decodeThreads(info) || cpus().length;
        engines.set(weights, await OnnxEngine.load(exp.onnxPath, info, threads));
        stack ??= stackExperts(info, [loadExpertWeights(expertDir, 'e', base)]);
        console.log(`${name} ${weights}: exported and loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      }
      const q8 = join(ws, `${base.hiddenSize}-q8_0.gguf`);
      exportBaseGguf(base, q8, 'q8_0');
      const adapter = join(ws, `${base.hiddenSize}-e.gguf`);
      exportExpertGguf(expertDir, 'e', base, adapter);
      const q8Model = await llama.loadModel({ modelPath: q8 });
      const q4 = join(ws, `${base.hiddenSize}-q4_0.gguf`);
      exportBaseGguf(base, q4, 'q4_0');
      const q4Model = await llama.loadModel({ modelPath: q4 });
      const rand = seededRandom(1);
      for (const len of PROMPTS) {
        const prompt = [256, ...Array.from({ length: len - 1 }, () => 32 + Math.floor(rand() * 90))];
        for (const e of engines.values()) await ours(e, stack!, prompt.slice(0, 16), 0);
        await theirs(q8Model, adapter, threads, prompt.slice(0, 16), 0);
        await theirs(q4Model, adapter, threads, prompt.slice(0, 16), 0);
        const runs = new Map<string, { ttftMs: number; decodeTps: number; tokens?: number[] }[]>();
        for (let i = 0; i < ROUNDS; i++) {
          for (const [w, e] of engines) runs.set(w, [...(runs.get(w) ?? []), await ours(e, stack!, prompt, DECODE)]);
          runs.set('llama.cpp q8_0', [...(runs.get('llama.cpp q8_0') ?? []), await theirs(q8Model, adapter, threads, prompt, DECODE)]);
          runs.set('llama.cpp q4_0', [...(runs.get('llama.cpp q4_0') ?? []), await theirs(q4Model, adapter, threads, prompt, DECODE)]);
        }
        const f32 = runs.get('f32')![0]!.tokens!;
        const cells = [...runs].map(([w, r]) => {
          const agree = r[0]!.tokens ? `${r[0]!.tokens!.filter((t, i) => t === f32[i]).length}/${f32.length}` : '—';
          return { w, ttft: median(r.map((t) => t.ttftMs)), tps: median(r.map((t) => t.decodeTps)), agree };
        });
        const ref = cells.find((c) => c.w === 'llama.cpp q8_0')!;
        // The matching type: our int8 against llama.cpp's q8_0, our int4 against its q4_0 (both blocks of 32).
        const match: Record<string, string> = { int8: 'llama.cpp q8_0', int4: 'llama.cpp q4_0' };
        for (const c of cells) {
          const m = match[c.w] ? cells.find((x) => x.w === match[c.w])! : undefined;
          if (m) figure({ bench: 'quantized', figure: `decode, ${name}, ${len}-token prompt, ${c.w} weights, one expert, ${threads} thread(s)`, ours: c.tps, unit: 'tok/s', comparison: `${m.w} + the same LoRA`, theirs: m.tps, ratio: c.tps / m.tps, target: '≥ 1.0×', met: c.tps >= m.tps, note: `greedy tokens as f32: ${c.agree}; TTFT ${c.ttft.toFixed(0)} ms vs ${m.ttft.toFixed(0)} ms` });
          rows.push(`| ${name} | ${threads} | ${len} | ${c.w} | ${c.ttft.toFixed(0)} ms | ${c.tps.toFixed(1)} | ${(c.tps / ref.tps).toFixed(2)} | ${m ? (c.tps / m.tps).toFixed(2) : ''} | ${c.agree} |`);
          console.log(rows.at(-1));
        }
      }
      for (const e of engines.values()) await e.release();
      await q8Model.dispose();
      await q4Model.dispose();
    }
  } finally {
    rmSync(ws, { recursive: true, force: true });
  }
  console.log(`\nweight types, one rank-8 expert (float) on q/k/v/o, ${DECODE} greedy tokens, median of ${ROUNDS} interleaved rounds`);
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}; load average ${load0.toFixed(2)} at start, ${loadavg()[0]!.toFixed(2)} at end`);
  console.log('| model | threads | prompt | weights | TTFT | decode tok/s | decode ÷ llama.cpp q8_0 | ÷ llama.cpp at the matching type | greedy tokens as f32 |');
  console.log('|---|---:|---:|---|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(r);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
