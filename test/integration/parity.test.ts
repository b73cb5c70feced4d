// The TypeScript inference path against PyTorch, all real: the shipped moa-tiny exported by the
// trainer (through ensureOnnxExport), experts written by the trainer's own writer and read by our
// store, stacked by stackExperts, run by OnnxEngine in onnxruntime-node; the reference is
// moa_trainer's model in PyTorch (parity_torch.py), recomputing every sequence in full.
// trainer/tests/test_export.py holds the graph to PyTorch from Python; this holds our engine to it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadExpertWeights, type ExpertWeights } from '../../src/core/adapters/store';
import { readBaseModel } from '../../src/core/models/base';
import { gramBuckets } from '../../src/core/routing/ngram';
import { learnedRoute } from '../../src/core/routing/learned';
import { productLayout, workspaceLayout } from '../../src/core/paths';
import { choosePython } from '../../src/core/trainer/python';
import { OnnxEngine, type GenerateOptions } from '../../src/core/inference/engine';
import { stackExperts, type ExpertStack } from '../../src/core/inference/expertStack';
import { ensureOnnxExport, type OnnxExport } from '../../src/core/inference/export';
import { readOnnxModelInfo } from '../../src/core/inference/modelInfo';
import { repoRoot, tempWorkspace } from '../helpers/tmp';

const root = repoRoot();
const baseDir = join(root, 'models', 'moa-tiny');
const python = choosePython(root).command;
const TOL = 1e-3;
const STEPS = 12;

// BOS, then a little Python: the tiny model has seen code like it, so greedy decoding is not degenerate.
const PROMPT = [256, ...Buffer.from('import os\n\n\ndef read_lines(path):\n    with open(path) as f:\n        return f.')];
const EXPERTS = [
  // Different ranks and alphas: the stack zero-pads ranks and folds each expert's scaling into B.
  { name: 'alpha', r: 4, alpha: 8, seed: 11, std: 0.08 },
  { name: 'beta', r: 6, alpha: 3, seed: 12, std: 0.1 },
  { name: 'gamma', r: 2, alpha: 4, seed: 13, std: 0.08 },
];
const MIX = { alpha: 0.65, beta: 0.35 }; // a top-2 mix: two experts, renormalised weights

interface Greedy {
  tokens: number[];
  rows: number[][];
}
interface Reference {
  logits: Record<string, number[]>;
  greedy: Record<string, Greedy>;
}

let ws: { root: string; cleanup: () => void };
let engine: OnnxEngine;
let plainExport: OnnxExport;
let ref: Reference;
const weights = new Map<string, ExpertWeights>();

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'same number of logits');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function stack(names: string[]): ExpertStack {
  return stackExperts(engine.info, names.map((n) => weights.get(n)!));
}

/** Greedy decoding through the engine's real path (prefill + KV cache), keeping each step's logits row. */
async function greedy(e: OnnxEngine, s: ExpertStack, w: number[], extra: Partial<GenerateOptions> = {}) {
  const rows: Float32Array[] = [];
  const r = await e.generate(PROMPT, {
    stack: s, expertWeights: w, maxNewTokens: STEPS, temperature: 0, topP: 1, seed: 0,
    onLogits: (row) => rows.push(Float32Array.from(row)), ...extra,
  });
  return { ...r, rows };
}

before(async () => {
  ws = tempWorkspace();
  const layout = workspaceLayout(ws.root);
  const product = productLayout(root);
  const request = {
    base: baseDir,
    experts_dir: layout.expertsDir,
    make: EXPERTS,
    logits: [
      { name: 'none', ids: PROMPT, experts: {} },
      { name: 'alpha', ids: PROMPT, experts: { alpha: 1 } },
      { name: 'mix', ids: PROMPT, experts: MIX },
    ],
    greedy: [
      { name: 'mix', prompt: PROMPT, steps: STEPS, experts: MIX },
      { name: 'beta', prompt: PROMPT, steps: STEPS, experts: { beta: 1 } },
    ],
  };
  const reqFile = join(ws.root, 'parity-request.json');
  writeFileSync(reqFile, JSON.stringify(request));
  const py = spawnSync(python, [join(root, 'test', 'integration', 'parity_torch.py'), reqFile], {
    encoding: 'utf8', env: { ...process.env, PYTHONPATH: product.trainerDir, OMP_NUM_THREADS: '1' }, maxBuffer: 64 * 1024 * 1024, timeout: 300_000,
  });
  assert.equal(py.status, 0, `parity_torch.py failed (${python}):\n${py.stderr}`);
  ref = JSON.parse(py.stdout) as Reference;

  plainExport = await ensureOnnxExport(layout, product, baseDir, python);
  engine = await OnnxEngine.load(plainExport.onnxPath, readOnnxModelInfo(plainExport.infoPath));
  const base = readBaseModel('builtin:moa-tiny', baseDir);
  for (const e of EXPERTS) weights.set(e.name, loadExpertWeights(join(layout.expertsDir, e.name), e.name, base));
});

after(async () => {
  await engine?.release();
  ws?.cleanup();
});

test('no expert, one expert, a top-2 mix: onnxruntime-node logits equal PyTorch\'s within 1e-3 at every prompt position', async () => {
  const cases: [string, string[], number[]][] = [
    ['none', [], [0]],
    ['alpha', ['alpha'], [1]],
    ['mix', ['alpha', 'beta'], [MIX.alpha, MIX.beta]],
  ];
  for (const [name, names, w] of cases) {
    const ours = await engine.logits(PROMPT, stack(names), w);
    assert.equal(ours.length, PROMPT.length * engine.info.vocabSize);
    const d = maxDiff(ours, ref.logits[name]!);
    assert.ok(d < TOL, `${name}: max |onnx − torch| = ${d}`);
  }
  // Not a vacuous comparison: the experts move the logits far more than the tolerance.
  assert.ok(maxDiff(ref.logits['alpha']!, ref.logits['none']!) > 0.1, 'the expert changes the logits');
  assert.ok(maxDiff(ref.logits['mix']!, ref.logits['alpha']!) > 0.05, 'the mix is not the first expert alone');
});

test('cached decoding equals full recompute: the same greedy tokens as PyTorch, every step\'s logits within 1e-3, and within 1e-4 of our own full pass', async () => {
  const s = stack(['alpha', 'beta']);
  const w = [MIX.alpha, MIX.beta];
  const run = await greedy(engine, s, w);
  const torch = ref.greedy['mix']!;
  assert.equal(run.stopReason, 'max-tokens');
  assert.deepEqual(run.tokens, torch.tokens, 'greedy tokens');
  assert.equal(run.rows.length, STEPS);
  run.rows.forEach((row, i) => assert.ok(maxDiff(row, torch.rows[i]!) < TOL, `step ${i}: vs PyTorch ${maxDiff(row, torch.rows[i]!)}`));
  // The same sequence in one pass without the cache, through the same session.
  const full = await engine.logits([...PROMPT, ...run.tokens], s, w);
  const V = engine.info.vocabSize;
  run.rows.forEach((row, i) => {
    const at = PROMPT.length - 1 + i;
    const d = maxDiff(row, full.subarray(at * V, (at + 1) * V));
    assert.ok(d < 1e-4, `step ${i}: cached vs full recompute ${d}`);
  });
  assert.ok(new Set(run.tokens).size > 1, 'decoding moved on from the first token');
});

test('switching expert between requests gives exactly what feeding that expert alone gives', async () => {
  // Request 1 on alpha, then request 2 on beta, in the same session...
  const first = await greedy(engine, stack(['alpha']), [1]);
  const switched = await greedy(engine, stack(['beta']), [1]);
  // ...against beta alone in a session that never saw another expert.
  const fresh = await OnnxEngine.load(plainExport.onnxPath, readOnnxModelInfo(plainExport.infoPath));
  try {
    const alone = await greedy(fresh, stackExperts(fresh.info, [weights.get('beta')!]), [1]);
    assert.deepEqual(switched.tokens, alone.tokens);
    switched.rows.forEach((row, i) => assert.equal(maxDiff(row, alone.rows[i]!), 0, `step ${i}: bit-identical logits`));
  } finally {
    await fresh.release();
  }
  assert.notDeepEqual(first.tokens, switched.tokens, 'the two experts lead to different text, so the switch is visible');
  assert.deepEqual(switched.tokens, ref.greedy['beta']!.tokens, 'and it is PyTorch\'s beta continuation');
  // Switching by routing weights inside one stacked pair: the zero-weight expert contributes nothing.
  const pair = stack(['alpha', 'beta']);
  const viaWeights = await greedy(engine, pair, [0, 1]);
  assert.deepEqual(viaWeights.tokens, switched.tokens);
  // Not bit-identical: stacking two experts changes the shapes of the LoRA matmuls, so onnxruntime
  // sums in another order; the difference is float rounding, far below the 1e-3 parity bound.
  viaWeights.rows.forEach((row, i) => {
    const d = maxDiff(row, switched.rows[i]!);
    assert.ok(d < 1e-4, `step ${i}: ${d}`);
  });
});

test('a learned route is decided from the prompt\'s token n-grams before any pass and served by that expert alone: PyTorch\'s beta continuation', async () => {
  const names = EXPERTS.map((e) => e.name);
  const beta = names.indexOf('beta');
  const buckets = 1 << 12;
  // Only this prompt's n-grams vote, and for beta: the decision is the table's, not a default.
  const weight = new Float32Array(buckets * names.length);
  for (const b of gramBuckets(PROMPT, buckets)) weight[b * names.length + beta] = 1;
  const router = { experts: names, table: { buckets, experts: names.length, weight, bias: new Float32Array(names.length) } };
  const undecided = { mode: 'learned' as const, experts: [], byRouter: true, reason: 'the learned router chooses among alpha, beta, gamma from the prompt' };
  const route = learnedRoute(undecided, router, PROMPT);
  assert.deepEqual(route.experts, [{ name: 'beta', weight: 1 }]);
  assert.match(route.reason, new RegExp(`^learned router \\(token n-grams of ${PROMPT.length} tokens\\): beta$`));
  const run = await greedy(engine, stack(route.experts.map((e) => e.name)), route.experts.map((e) => e.weight));
  assert.deepEqual(run.tokens, ref.greedy['beta']!.tokens);
  run.rows.forEach((row, i) => assert.ok(maxDiff(row, ref.greedy['beta']!.rows[i]!) < TOL, `step ${i}`));
});

test('stop tokens (a FIM model\'s markers) end generation like EOS and are not returned', async () => {
  const s = stack(['alpha', 'beta']);
  const w = [MIX.alpha, MIX.beta];
  const all = (await greedy(engine, s, w)).tokens;
  // The first token that did not occur earlier: stopping on it must cut the output right before it.
  const k = all.findIndex((t, i) => i > 0 && !all.slice(0, i).includes(t));
  assert.ok(k > 0, `some later token is new: ${all}`);
  const stopped = await greedy(engine, s, w, { stopTokens: [all[k]!] });
  assert.equal(stopped.stopReason, 'eos');
  assert.deepEqual(stopped.tokens, all.slice(0, k));
});

test('prompt lookup drafting changes nothing but the number of passes: same tokens, logits within 1e-4, also with stops and odd budgets', async () => {
  // Repetitive code, so that drafts exist and some are kept.
  const line = '    total = total + read_lines(path)\n';
  const prompt = [256, ...Buffer.from(`def count(paths):\n    total = 0\n    for path in paths:\n${line}${line}${line}`)];
  const cases: [string, OnnxEngine, ExpertStack, Partial<GenerateOptions>][] = [
    ['mix', engine, stack(['alpha', 'beta']), { expertWeights: [MIX.alpha, MIX.beta] }],
    ['beta', engine, stack(['beta']), { expertWeights: [1] }],
  ];
  let kept = 0;
  for (const [name, e, s, extra] of cases) {
    for (const maxNewTokens of [40, 7]) {
      const run = (draftTokens: number, more: Partial<GenerateOptions> = {}) => {
        const rows: Float32Array[] = [];
        return e.generate(prompt, {
          stack: s, expertWeights: [], maxNewTokens, temperature: 0, topP: 1, seed: 0, draftTokens, ...extra, ...more,
          onLogits: (row) => rows.push(Float32Array.from(row)),
        }).then((r) => ({ ...r, rows }));
      };
      const plain = await run(0);
      const drafted = await run(8);
      assert.equal(plain.draft.passes, 0, 'draftTokens 0 never drafts');
      assert.deepEqual(drafted.tokens, plain.tokens, `${name}/${maxNewTokens}: greedy tokens`);
      assert.equal(drafted.tokens.length, maxNewTokens);
      assert.equal(drafted.rows.length, plain.rows.length, 'one logits row per generated token');
      drafted.rows.forEach((row, i) => assert.ok(maxDiff(row, plain.rows[i]!) < 1e-4, `${name} step ${i}: ${maxDiff(row, plain.rows[i]!)}`));
      kept += drafted.draft.accepted;
      // A stop token inside an accepted draft ends the output exactly where one-by-one decoding ends it.
      const k = plain.tokens.findIndex((t, i) => i > 2 && !plain.tokens.slice(0, i).includes(t));
      if (k > 0) {
        const a = await run(0, { stopTokens: [plain.tokens[k]!] });
        const b = await run(8, { stopTokens: [plain.tokens[k]!] });
        assert.deepEqual(b.tokens, a.tokens);
        assert.equal(b.stopReason, 'eos');
      }
    }
  }
  assert.ok(kept > 0, 'some drafted tokens were kept: the multi-token pass was exercised');
});

test('the KV cache written in place gives what the growing cache gives: same tokens and logits, with drafts and at the last position', async () => {
 assert.ok(engine.info.kvInPlace, 'moa-tiny\'s graph uses GroupQueryAttention: model.json says kv_in_place');
  const line = '    total = total + read_lines(path)\n';
  const prompt = [256, ...Buffer.from(`def count(paths):\n    total = 0\n    for path in paths:\n${line}${line}`)];
  const nearEnd = [256, ...Array.from({ length: engine.info.maxPositions - 6 }, (_, i) => 97 + (i % 7))];
  const cases: [string, OnnxEngine, ExpertStack, Partial<GenerateOptions>, number[]][] = [
    ['mix', engine, stack(['alpha', 'beta']), { expertWeights: [MIX.alpha, MIX.beta] }, prompt],
    ['beta', engine, stack(['beta']), { expertWeights: [1] }, prompt],
    ['last positions', engine, stack(['alpha']), { expertWeights: [1] }, nearEnd],
  ];
  for (const [name, e, s, extra, p] of cases) {
    for (const draftTokens of [0, 8]) {
      const run = (kvCache: 'in-place' | 'grow') => {
        const rows: Float32Array[] = [];
        return e.generate(p, { stack: s, expertWeights: [], maxNewTokens: 24, temperature: 0, topP: 1, seed: 0, draftTokens, kvCache, ...extra, onLogits: (row) => rows.push(Float32Array.from(row)) })
          .then((r) => ({ ...r, rows }));
      };
      const grow = await run('grow');
      const inPlace = await run('in-place');
      assert.deepEqual(inPlace.tokens, grow.tokens, `${name}, draft ${draftTokens}: tokens`);
      assert.equal(inPlace.rows.length, grow.rows.length);
      inPlace.rows.forEach((row, i) => assert.ok(maxDiff(row, grow.rows[i]!) < 1e-5, `${name}, draft ${draftTokens}, step ${i}: ${maxDiff(row, grow.rows[i]!)}`));
    }
  }
});

test('generation ends at the model\'s last position; a prompt that fills it is refused with the reason', async () => {
  const limit = engine.info.maxPositions;
  assert.equal(limit, 1024, 'moa-tiny: max_position_embeddings');
  const long = Array.from({ length: limit - 5 }, (_, i) => PROMPT[i % PROMPT.length]!);
  for (const temperature of [0, 0.8]) { // with and without prompt lookup's multi-token passes
    const r = await engine.generate(long, { stack: stack([]), expertWeights: [0], maxNewTokens: 50, temperature, topP: 1, seed: 1 });
    assert.ok(r.tokens.length <= 5, `${r.tokens.length} tokens`);
    if (r.stopReason === 'max-tokens') assert.equal(r.tokens.length, 5);
  }
  await assert.rejects(engine.generate(Array.from({ length: limit }, () => 65), { stack: stack([]), expertWeights: [0], maxNewTokens: 1, temperature: 0, topP: 1, seed: 0 }), /1024 tokens; this model takes 1024 positions/);
});
