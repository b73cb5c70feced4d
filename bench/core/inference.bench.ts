// Inference benchmarks (issue 5): switching expert between requests next to recreating the
// session, routing overhead as a share of time-to-first-token, TTFT p50/p95 for a 256-token
// prompt on moa-tiny, and the engine's resident memory. Every ratio comes from figures measured
// side by side in this one run. Run: npm run bench:inference (needs .venv for the one-time ONNX
// export; -- --quick for fewer rounds). Prints figures; writes nothing into the repository.
import { mkdirSync, writeFileSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { validateConfig } from '../../src/core/config/validate';
import { productLayout, workspaceLayout } from '../../src/core/paths';
import { choosePython } from '../../src/core/trainer/python';
import { writeSafetensorsF32 } from '../../src/core/adapters/safetensors';
import { loraKey } from '../../src/core/adapters/peftKeys';
import { loadExpertWeights, moduleDims } from '../../src/core/adapters/store';
import { learnedRoute } from '../../src/core/routing/learned';
import type { RouteDecision } from '../../src/core/routing/resolve';
import { readBaseModel } from '../../src/core/models/base';
import { CompletionService, DEFAULT_COMPLETE } from '../../src/core/inference/service';
import { OnnxEngine, decodeThreads, loadOrt } from '../../src/core/inference/engine';
import { stackExperts } from '../../src/core/inference/expertStack';
import { ensureOnnxExport } from '../../src/core/inference/export';
import { readOnnxModelInfo } from '../../src/core/inference/modelInfo';
import { figure, quick } from './figures';
import { median, quantile } from './stats';

// Read before onnxruntime-node (a lazy import) or any model is loaded: the engine's memory is measured from here.
const rssAtStart = process.memoryUsage().rss;

const root = resolve(__dirname, '..', '..');
const product = productLayout(root);
const baseDir = join(root, 'models', 'moa-tiny');
const python = choosePython(root).command;

const ms = (x: number) => `${x.toFixed(x < 1 ? 3 : 1)} ms`;

/** A seeded random LoRA expert in PEFT layout, as the trainer writes them (rank 8, alpha 16, q/k/v/o). */
function writeExpert(dir: string, domain: string, seed: number): void {
  const base = readBaseModel('builtin:moa-tiny', baseDir);
  const { q_proj, k_proj, v_proj, o_proj } = moduleDims(base);
  const dims = { q_proj: q_proj!, k_proj: k_proj!, v_proj: v_proj!, o_proj: o_proj! };

  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.1;
  const r = 8;
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (let l = 0; l < base.numLayers; l++) {
    for (const [m, [inF, outF]] of Object.entries(dims)) {
      tensors.set(loraKey(l, m, 'A'), { shape: [r, inF], data: Float32Array.from({ length: r * inF }, rand) });
      tensors.set(loraKey(l, m, 'B'), { shape: [outF, r], data: Float32Array.from({ length: outF * r }, rand) });
    }
  }
  mkdirSync(dir, { recursive: true });
  writeSafetensorsF32(join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r, lora_alpha: 16, target_modules: Object.keys(dims) }));
  writeFileSync(join(dir, 'expert.json'), JSON.stringify({ v: 1, domain }));
}

async function main(): Promise<void> {
  const ws = mkdtempSync(join(tmpdir(), 'moa-bench-inference-'));
  try {
    const layout = workspaceLayout(ws);
    const config = validateConfig({ domains: [{ name: 'python', include: ['**/*.py'] }, { name: 'markdown', include: ['**/*.md'] }] }).config!;
    mkdirSync(layout.moaDir, { recursive: true });
    writeFileSync(layout.configFile, JSON.stringify(config));
    writeExpert(join(layout.expertsDir, 'python'), 'python', 1);
    writeExpert(join(layout.expertsDir, 'markdown'), 'markdown', 2);
    // Export first, in its own step: the one-time Python export is not part of any figure below.
    const exp = await ensureOnnxExport(layout, product, baseDir, python);

    // ---- (d) resident memory: onnxruntime-node's library, then the service with its session, tokenizer and two experts, warm.
    await loadOrt();
    const rssOrt = process.memoryUsage().rss;
    const code = 'import os\nimport sys\n\n\ndef load(path, limit=10):\n    """Read the first lines of a file."""\n    with open(path) as handle:\n        lines = handle.readlines()\n    return [line.strip() for line in lines[:limit]]\n\n\nclass Store:\n    def __init__(self, name):\n        self.name = name\n        self.items = {}\n\n    def put(self, key, value):\n        self.items[key] = value\n';
    const prefix = code.slice(-255); // + BOS = a 256-token prompt (ASCII: one byte, one token)
    const service = new CompletionService(layout, product, config, python);
    const opts = { ...DEFAULT_COMPLETE, maxNewTokens: 1, promptTokens: 256 };
    const first = await service.complete('src/a.py', prefix, opts);
    if (first.prompt.tokens !== 256) throw new Error(`prompt has ${first.prompt.tokens} tokens, not 256`);
    await service.complete('docs/a.md', prefix, opts);
    const rssService = process.memoryUsage().rss;

    // ---- (c) time-to-first-token for a 256-token prompt, the whole request: route, tokenize, stack, prefill, first token.
    for (let i = 0; i < 5; i++) await service.complete('src/a.py', prefix, opts); // warm-up
    const ttft: number[] = [];
    const routeMs: number[] = [];
    const sameExpert: number[] = [];
    const switching: number[] = [];
    for (let i = 0; i < (quick ? 8 : 40); i++) {
      // Interleaved so that load on this shared machine falls on all series alike.
      let t = performance.now();
      service.routes.route('src/a.py');
      routeMs.push(performance.now() - t);
      // python after markdown (a switch), python after python (same expert), markdown after python (a switch).
      for (const [file, series] of [['src/a.py', switching], ['src/a.py', sameExpert], ['docs/a.md', switching]] as const) {
        t = performance.now();
        await service.complete(file, prefix, opts);
        const d = performance.now() - t;
        series.push(d);
        ttft.push(d);
      }
    }

    // The same call back to back, caches warm: what route() costs when nothing runs between calls.
    const routeWarm: number[] = [];
    for (let i = 0; i < 1000; i++) {
      const t = performance.now();
      service.routes.route('src/a.py');
      routeWarm.push(performance.now() - t);
    }

    // ---- (a) switching expert: what a switch computes (stack the new expert's tensors) vs a new session.
    const info = readOnnxModelInfo(exp.infoPath);
    const base = readBaseModel('builtin:moa-tiny', baseDir);
    const py = loadExpertWeights(join(layout.expertsDir, 'python'), 'python', base);
    const md = loadExpertWeights(join(layout.expertsDir, 'markdown'), 'markdown', base);
    const stackTimes: number[] = [];
    for (let i = 0; i < 400; i++) {
      const t = performance.now();
      stackExperts(info, [i % 2 ? py : md]);
      stackTimes.push(performance.now() - t);
    }

    // ---- (b) the learned router's decision: its n-gram table (the trainer's size, 2^16 buckets) over the 256-token prompt.
    let s = 7;
    const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.2;
    const buckets = 1 << 16;
    const router = { experts: ['markdown', 'python'], table: { buckets, experts: 2, weight: Float32Array.from({ length: buckets * 2 }, rand), bias: new Float32Array(2) } };
    const undecided: RouteDecision = { mode: 'learned', experts: [], byRouter: true, reason: '' };
    const ids = [256, ...Buffer.from(prefix)];
    const decideT: number[] = [];
    for (let i = 0; i < (quick ? 50 : 500); i++) {
      const t = performance.now();
      learnedRoute(undecided, router, ids);
      decideT.push(performance.now() - t);
    }
    // (a) continued: what a design that baked the expert into the graph would pay per switch at least.
    const recreate: number[] = [];
    for (let i = 0; i < (quick ? 2 : 6); i++) {
      const t = performance.now();
      const e = await OnnxEngine.load(exp.onnxPath, info, decodeThreads(info));
      recreate.push(performance.now() - t);
      await e.release();
    }

    await service.dispose();

    const mb = (x: number) => `${(x / 2 ** 20).toFixed(1)} MB`;
    const p50 = median(ttft);
    console.log(`moa-tiny (${base.numLayers} layers, hidden ${base.hiddenSize}), ${decodeThreads(info)} intra-op thread(s) as completions use, ${new Date().toISOString()}`);
    console.log(`(a) switch expert: stack the new expert's inputs ${ms(median(stackTimes))} median of ${stackTimes.length} (target < 1 ms); recreate the session ${ms(median(recreate))} median of ${recreate.length}: ${(median(recreate) / median(stackTimes)).toFixed(0)}× the switch`);
    console.log(`    whole request (TTFT) with the same expert as the request before ${ms(median(sameExpert))} (p50 of ${sameExpert.length}) vs with the other expert ${ms(median(switching))} (p50 of ${switching.length})`);
    console.log(`(b) label routing (service.route) between requests ${ms(median(routeMs))} = ${((100 * median(routeMs)) / p50).toFixed(2)}% of TTFT (target < 5%); back to back ${ms(median(routeWarm))}`);
    console.log(`    learned routing's decision (n-gram table, 256-token prompt) ${ms(median(decideT))} = ${((100 * median(decideT)) / p50).toFixed(2)}% of TTFT (target < 5%)`);
    console.log(`(c) TTFT, 256-token prompt, whole request through CompletionService: p50 ${ms(p50)}, p95 ${ms(quantile(ttft, 0.95))} (${ttft.length} requests)`);
    const b = 'inference';
    figure({ bench: b, figure: 'switch expert between requests (stack its inputs), moa-tiny', ours: median(stackTimes), unit: 'ms', comparison: 'recreate the session', theirs: median(recreate), ratio: median(stackTimes) / median(recreate), target: '< 1 ms', met: median(stackTimes) < 1 });
    figure({ bench: b, figure: 'label routing as a share of time to first token', ours: median(routeMs), unit: 'ms', comparison: 'TTFT p50', theirs: p50, ratio: median(routeMs) / p50, target: '< 5 %', met: median(routeMs) / p50 < 0.05 });
    figure({ bench: b, figure: 'learned routing\'s decision (n-gram table) as a share of time to first token (256 tokens)', ours: median(decideT), unit: 'ms', comparison: 'TTFT p50', theirs: p50, ratio: median(decideT) / p50, target: '< 5 %', met: median(decideT) / p50 < 0.05 });
    figure({ bench: b, figure: 'time to first token, 256-token prompt, whole request, moa-tiny (p50)', ours: p50, unit: 'ms', note: `p95 ${quantile(ttft, 0.95).toFixed(1)} ms of ${ttft.length}` });
    figure({ bench: b, figure: 'resident memory of the completion engine (onnxruntime + session + 2 experts)', ours: (rssService - rssAtStart) / 2 ** 20, unit: 'MiB' });
    console.log(`(d) resident memory over the process before it (${mb(rssAtStart)}): +${mb(rssService - rssAtStart)} in all = onnxruntime-node's library +${mb(rssOrt - rssAtStart)}, then the service (session, tokenizer, 2 experts, warm) +${mb(rssService - rssOrt)}`);
  } finally {
    rmSync(ws, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
