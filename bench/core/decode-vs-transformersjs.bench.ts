// Decode tokens/s of our engine against transformers.js (@huggingface/transformers on
// onnxruntime-node), both generating greedily from moa-tiny exported by the trainer, same prompt,
// same token count, measured alternately in one process. transformers.js cannot load the MoA graph
// (its expert inputs are required inputs it does not feed), so it runs the trainer's `hf` variant
// of the same weights (onnx/model.onnx + config.json), and we run our own export.
// Run: npm run bench:transformersjs [-- --quick]. transformers.js is installed on demand into
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
import { atLeast, figure, quick } from './figures';
import { median } from './stats';

const root = resolve(__dirname, '..', '..');
const tjsDir = join(root, 'bench', 'transformersjs');
const baseDir = join(root, 'models', 'moa-tiny');
const python = choosePython(root).command;
// The decode rate is generate(N) minus generate(1): with prompt lookup a short N can take as few
// passes as N = 1 does, so even the quick run generates enough tokens for the difference to be real.
const NEW_TOKENS = quick ? 64 : 128;
const ROUNDS = quick ? 3 : 5;

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

    // Prompts: 256 bytes (tokens) cut mid-file from four kinds of file in this repository, at a line start.
    const promptFiles = ['trainer/moa_trainer/train.py', 'src/core/inference/service.ts', 'README.md', 'scripts/test.mjs'].slice(0, quick ? 1 : 4);
    const prompts = promptFiles.map((f) => {
      const text = readFileSync(join(root, f));
      const cut = text.indexOf(10, Math.floor(text.length * 0.6)) + 1;
      return { file: f, ids: [256, ...text.subarray(cut - 256, cut)] };
    });
    const runOurs = async (prompt: number[], n: number, stack = none, w = [0], engine = ours, draftTokens?: number) => {
      const t = performance.now();
      const g = await engine.generate(prompt, { stack, expertWeights: w, maxNewTokens: n, temperature: 0, topP: 1, seed: 0, draftTokens });
      return { ms: performance.now() - t, tokens: g.tokens, draft: g.draft };
    };
    const runTheirs = async (prompt: number[], n: number, model = theirs) => {
      const t = performance.now();
      const input_ids = new tjs.Tensor('int64', BigInt64Array.from(prompt, (x) => BigInt(x)), [1, prompt.length]);
      const out = await model.generate({ input_ids, max_new_tokens: n, min_new_tokens: n, do_sample: false });
      return { ms: performance.now() - t, tokens: Array.from(out.data.slice(prompt.length), Number) };
    };

    // Each series: generate(N) and generate(1), all series interleaved round by round.
    type Run = (p: number[], n: number) => Promise<{ ms: number; tokens: number[]; draft?: { passes: number; proposed: number; accepted: number } }>;
    const series: [string, Run][] = [
      ['ours (defaults: 1 thread for this model, prompt lookup)', (p, n) => runOurs(p, n)],
      ['ours, one rank-8 expert', (p, n) => runOurs(p, n, one, [1])],
      ['ours, prompt lookup off', (p, n) => runOurs(p, n, none, [0], ours, 0)],
      ['ours, lookup off, onnxruntime default threads', (p, n) => runOurs(p, n, none, [0], oursOrtThreads, 0)],
      ['transformers.js, defaults', (p, n) => runTheirs(p, n)],
      ['transformers.js, intraOpNumThreads 1', (p, n) => runTheirs(p, n, theirs1T)],
    ];
    const THEIRS = 4;
    console.log(`moa-tiny, ${NEW_TOKENS} new tokens, greedy, medians of ${ROUNDS} interleaved rounds; transformers.js ${version}; our decode threads here: ${decodeThreads(info)}; ${new Date().toISOString()}`);
    const ratios: number[][] = series.map(() => []);
    const ratios1T: number[][] = series.map(() => []);
    for (const prompt of prompts) {
      // Warm-up, and the check that every series without an expert computes the same greedy tokens.
      const outs: Awaited<ReturnType<Run>>[] = [];
      for (const [, run] of series) outs.push(await run(prompt.ids, NEW_TOKENS));
      const same = outs.every((o, k) => k === 1 || (o.tokens.length === NEW_TOKENS && o.tokens.join() === outs[0]!.tokens.join()));
      const times = series.map(() => ({ n: [] as number[], one: [] as number[] }));
      const drafts = { passes: 0, proposed: 0, accepted: 0 };
      for (let i = 0; i < ROUNDS; i++) {
        for (const [k, [, run]] of series.entries()) {
          const r = await run(prompt.ids, NEW_TOKENS);
          times[k]!.n.push(r.ms);
          if (k === 0 && r.draft) for (const key of ['passes', 'proposed', 'accepted'] as const) drafts[key] += r.draft[key];
          times[k]!.one.push((await run(prompt.ids, 1)).ms);
        }
      }
      // Decode rate: the N−1 tokens after the first, i.e. generate(N) minus generate(1) (prefill + first token).
      const rate = (k: number) => {
        const ms = median(times[k]!.n) - median(times[k]!.one);
        if (ms <= 0) throw new Error(`${series[k]![0]}: generating ${NEW_TOKENS} tokens took no longer than 1 (${median(times[k]!.n).toFixed(1)} vs ${median(times[k]!.one).toFixed(1)} ms): too few tokens to time decoding`);
        return (NEW_TOKENS - 1) / (ms / 1000);
      };
      console.log(`\n${prompt.file}: prompt ${prompt.ids.length} tokens; same greedy tokens in every series: ${same ? 'yes' : 'NO'}; prompt lookup (our default series) kept ${drafts.accepted} of ${drafts.proposed} drafted tokens, checked in ${drafts.passes} passes, over ${ROUNDS * NEW_TOKENS} generated tokens`);
      console.log(`  continuation: ${JSON.stringify(Buffer.from(outs[0]!.tokens.filter((t) => t < 256)).toString('latin1').slice(0, 90))}`);
      series.forEach(([name], k) => {
        ratios[k]!.push(rate(k) / rate(THEIRS));
        ratios1T[k]!.push(rate(k) / rate(THEIRS + 1));
        console.log(`  ${name.padEnd(56)} decode ${rate(k).toFixed(0).padStart(5)} tokens/s = ${(rate(k) / rate(THEIRS)).toFixed(2)}× transformers.js defaults, ${(rate(k) / rate(THEIRS + 1)).toFixed(2)}× at 1 thread`);
      });
    }
    const geo = (xs: number[]) => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);
    console.log(`\ngeometric mean over the ${prompts.length} prompts, decode tokens/s ÷ transformers.js defaults (target ≥ 1.5×) / ÷ transformers.js at 1 thread:`);
    series.forEach(([name], k) => console.log(`  ${name.padEnd(56)} ${geo(ratios[k]!).toFixed(2)}× / ${geo(ratios1T[k]!).toFixed(2)}×  (per prompt: ${ratios[k]!.map((r) => r.toFixed(2)).join(', ')})`));
    figure({ bench: 'transformers.js', figure: `decode, moa-tiny, our defaults, ${NEW_TOKENS} tokens, geometric mean over ${prompts.length} prompt(s)`, ours: geo(ratios[0]!), unit: '× theirs', comparison: `transformers.js ${version}, defaults`, ...atLeast(geo(ratios[0]!), 1.5), note: `÷ transformers.js at 1 thread: ${geo(ratios1T[0]!).toFixed(2)}×` });
    figure({ bench: 'transformers.js', figure: 'decode, moa-tiny, one rank-8 expert attached', ours: geo(ratios[1]!), unit: '× theirs', comparison: `transformers.js ${version}, defaults (no expert)`, ...atLeast(geo(ratios[1]!), 1.5) });
    await ours.release();
    await oursOrtThreads.release();
    await theirs.dispose();
    await theirs1T.dispose();
  } finally {
    rmSync(ws, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
