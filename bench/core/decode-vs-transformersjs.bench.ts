// Decode tokens/s of our engine against transformers.js (@huggingface/transformers on
// onnxruntime-node), both generating greedily from moa-tiny exported by the trainer, same prompt,
// same token count, measured alternately in one process. transformers.js cannot load the MoA graph
// (its expert inputs are required inputs it does not feed), so it runs the trainer's `hf` variant
// of the same weights (onnx/model.onnx + config.json), and we run our own export.
// Run: npm run bench:transformersjs. transformers.js is installed on demand into
// bench/transformersjs/ (its own package.json), never into the root package.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { productLayout, workspaceLayout } from '../../src/core/paths';
import { choosePython } from '../../src/core/trainer/python';
import { readBaseModel } from '../../src/core/models/base';
import type { ExpertWeights } from '../../src/core/adapters/store';
import { OnnxEngine, decodeThreads } from '../../src/core/inference/engine';
import { stackExperts } from '../../src/core/inference/expertStack';
import { ensureOnnxExport } from '../../src/core/inference/export';
import { readOnnxModelInfo } from '../../src/core/inference/modelInfo';
import { median } from './stats';

const root = resolve(__dirname, '..', '..');
const tjsDir = join(root, 'bench', 'transformersjs');
const baseDir = join(root, 'models', 'moa-tiny');
const python = choosePython(root).command;
const NEW_TOKENS = 128;
const ROUNDS = 9;

// The slice of transformers.js this bench uses. Its own types live in bench/transformersjs, outside
// the root type-check (the package is not a root dependency), so they are declared here.
interface TjsModel {
  generate(opts: Record<string, unknown>): Promise<{ data: BigInt64Array; dims: number[] }>;
  dispose(): Promise<unknown>;
}
interface Tjs {
  env: { allowRemoteModels: boolean; allowLocalModels: boolean; localModelPath: string };
  Tensor: new (type: 'int64', data: BigInt64Array, dims: number[]) => unknown;
  AutoModelForCausalLM: { from_pretrained(name: string, opts: Record<string, unknown>): Promise<TjsModel> };
}

function loadTransformersJs(): { tjs: Tjs; version: string } {
  const pkg = join(tjsDir, 'node_modules', '@huggingface', 'transformers', 'package.json');
  if (!existsSync(pkg)) {
    console.log('installing @huggingface/transformers into bench/transformersjs (once)…');
    const r = spawnSync('npm', ['ci', '--prefix', tjsDir, '--no-audit', '--no-fund'], { stdio: 'inherit', cwd: root });
    if (r.status !== 0) throw new Error('npm ci --prefix bench/transformersjs failed');
  }
  const req = createRequire(join(tjsDir, 'package.json'));
  const version = (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
  // createRequire returns `any`; the module is held to the Tjs shape declared above.
  return { tjs: req('@huggingface/transformers') as Tjs, version };
}

async function main(): Promise<void> {
  const { tjs, version } = loadTransformersJs();
  const ws = mkdtempSync(join(tmpdir(), 'moa-bench-tjs-'));
  try {
    const layout = workspaceLayout(ws);
    const product = productLayout(root);
    const exp = await ensureOnnxExport(layout, product, baseDir, python);
    const hfDir = join(ws, 'models', 'moa-tiny-hf');
    const cfg = join(ws, 'export-hf.json');
    writeFileSync(cfg, JSON.stringify({ v: 1, base_model: baseDir, out: hfDir, variant: 'hf' }));
    const r = spawnSync(python, ['-m', 'moa_trainer', 'export', '--config', cfg], { encoding: 'utf8', env: { ...process.env, PYTHONPATH: product.trainerDir } });
    if (r.status !== 0) throw new Error(`hf export failed: ${r.stdout}${r.stderr}`);

    // The same token count on both sides: EOS must not end ours early (transformers.js gets min_new_tokens).
    const info = { ...readOnnxModelInfo(exp.infoPath), eosTokenId: -1 };
    const ours = await OnnxEngine.load(exp.onnxPath, info, decodeThreads(info)); // as CompletionService loads it
    // Our engine with onnxruntime's default threading, to show what the thread choice alone is worth.
    const oursOrtThreads = await OnnxEngine.load(exp.onnxPath, info, 0);
    const none = stackExperts(info, []);
    const base = readBaseModel('builtin:moa-tiny', baseDir);
    let s = 3;
    const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.1;
    const expert: ExpertWeights = { name: 'x', r: 8, scaling: 2, modules: new Map(info.targetModules.map((m) => {
      const { in: inF, out: outF } = info.modules[m]!;
      return [m, { inFeatures: inF, outFeatures: outF, A: Array.from({ length: base.numLayers }, () => Float32Array.from({ length: 8 * inF }, rand)), B: Array.from({ length: base.numLayers }, () => Float32Array.from({ length: outF * 8 }, rand)) }];
    })) };
    const one = stackExperts(info, [expert]);

    tjs.env.allowRemoteModels = false;
    tjs.env.allowLocalModels = true;
    tjs.env.localModelPath = join(ws, 'models');
    const theirs = await tjs.AutoModelForCausalLM.from_pretrained('moa-tiny-hf', { local_files_only: true, dtype: 'fp32', device: 'cpu' });
    // transformers.js as a user could tune it: the same single intra-op thread our engine uses here.
    const theirs1T = await tjs.AutoModelForCausalLM.from_pretrained('moa-tiny-hf', { local_files_only: true, dtype: 'fp32', device: 'cpu', session_options: { intraOpNumThreads: 1 } });

    const code = 'import os\nimport sys\n\n\ndef read_lines(path, limit=10):\n    with open(path) as f:\n        return ';
    const prompt = [256, ...Buffer.from(code)];
    const inputIds = () => new tjs.Tensor('int64', BigInt64Array.from(prompt, (x) => BigInt(x)), [1, prompt.length]);
    const runOurs = async (n: number, stack = none, w = [0], engine = ours) => {
      const t = performance.now();
      const g = await engine.generate(prompt, { stack, expertWeights: w, maxNewTokens: n, temperature: 0, topP: 1, seed: 0 });
      return { ms: performance.now() - t, tokens: g.tokens };
    };
    const runTheirs = async (n: number, model = theirs) => {
      const t = performance.now();
      const out = await model.generate({ input_ids: inputIds(), max_new_tokens: n, min_new_tokens: n, do_sample: false });
      return { ms: performance.now() - t, tokens: Array.from(out.data.slice(prompt.length), Number) };
    };

    // Warm-up, and the check that both sides compute the same thing: identical greedy tokens.
    const a = await runOurs(NEW_TOKENS);
    const b = await runTheirs(NEW_TOKENS);
    const b1 = await runTheirs(NEW_TOKENS, theirs1T);
    const c = await runOurs(NEW_TOKENS, none, [0], oursOrtThreads);
    await runOurs(NEW_TOKENS, one, [1]);
    const same = [b, b1, c].every((x) => a.tokens.length === NEW_TOKENS && x.tokens.join() === a.tokens.join());

    // Each series: generate(N) and generate(1), all series interleaved round by round.
    const series: [string, (n: number) => Promise<{ ms: number }>][] = [
      ['ours, no expert (our default: 1 thread for this model)', (n) => runOurs(n)],
      ['ours, one rank-8 expert', (n) => runOurs(n, one, [1])],
      ['ours, no expert, onnxruntime default threads', (n) => runOurs(n, none, [0], oursOrtThreads)],
      ['transformers.js, defaults', (n) => runTheirs(n)],
      ['transformers.js, intraOpNumThreads 1', (n) => runTheirs(n, theirs1T)],
    ];
    const times = series.map(() => ({ n: [] as number[], one: [] as number[] }));
    for (let i = 0; i < ROUNDS; i++) {
      for (const [k, [, run]] of series.entries()) {
        times[k]!.n.push((await run(NEW_TOKENS)).ms);
        times[k]!.one.push((await run(1)).ms);
      }
    }
    await ours.release();
    await oursOrtThreads.release();
    await theirs.dispose();
    await theirs1T.dispose();

    // Decode rate: the N−1 tokens after the first, i.e. generate(N) minus generate(1) (prefill + first token).
    const rate = (k: number) => (NEW_TOKENS - 1) / ((median(times[k]!.n) - median(times[k]!.one)) / 1000);
    console.log(`moa-tiny, prompt ${prompt.length} tokens, ${NEW_TOKENS} new tokens, greedy, medians of ${ROUNDS} interleaved rounds; transformers.js ${version}; our decode threads here: ${decodeThreads(info)}; ${new Date().toISOString()}`);
    console.log(`same greedy tokens in every series: ${same ? 'yes' : `NO (ours ${a.tokens.length}: ${a.tokens.slice(0, 12)}…, theirs ${b.tokens.length}: ${b.tokens.slice(0, 12)}…)`}`);
    series.forEach(([name], k) => {
      console.log(`${name.padEnd(56)} generate ${median(times[k]!.n).toFixed(1).padStart(6)} ms, first token ${median(times[k]!.one).toFixed(1).padStart(5)} ms, decode ${rate(k).toFixed(0).padStart(5)} tokens/s`);
    });
    console.log(`decode tokens/s, ours ÷ transformers.js defaults: ${(rate(0) / rate(3)).toFixed(2)}× no expert, ${(rate(1) / rate(3)).toFixed(2)}× with an expert (target ≥ 1.5×)`);
    console.log(`decode tokens/s, ours ÷ transformers.js with 1 thread: ${(rate(0) / rate(4)).toFixed(2)}× no expert, ${(rate(1) / rate(4)).toFixed(2)}× with an expert`);
  } finally {
    rmSync(ws, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
