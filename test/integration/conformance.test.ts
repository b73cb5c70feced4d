// The conformance matrix (issue #16): base folders written by transformers and adapters written by
// peft itself (conformance_peft.py), each imported and run through MoA's own path (readBaseModel,
// the trainer's ONNX export, importPeftAdapter, onnxruntime-node). Every cell has one of exactly
// two outcomes: imported and exact (last-position logits within 1e-4 of transformers + peft, the
// same greedy tokens), or refused with a message naming the file and the option. The matrix is
// printed, and kept in trainer/CONFORMANCE.md.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { importPeftAdapter } from '../../src/core/adapters/peft';
import { loadExpertWeights } from '../../src/core/adapters/store';
import { readBaseModel, type BaseModelInfo } from '../../src/core/models/base';
import { productLayout, workspaceLayout } from '../../src/core/paths';
import { choosePython } from '../../src/core/trainer/python';
import { OnnxEngine } from '../../src/core/inference/engine';
import { stackExperts } from '../../src/core/inference/expertStack';
import { ensureOnnxExport, graphTargets } from '../../src/core/inference/export';
import { readOnnxModelInfo } from '../../src/core/inference/modelInfo';
import { errorMessage } from '../../src/core/util/errors';
import { exportExpertGguf } from '../../src/core/gguf/adapter';
import { exportBaseGguf } from '../../src/core/gguf/llama';
import { llamaGreedy, loadLlamaCpp, type LlamaModel } from '../helpers/llamaCpp';
import { repoRoot, tempWorkspace } from '../helpers/tmp';

const root = repoRoot();
const python = choosePython(root).command;
const TOL = 1e-4;

interface Cell {
  kind: 'base' | 'adapter';
  name: string;
  base: string;
  adapter: string | null;
  peft_refused?: string;
  ids?: number[];
  last_logits?: number[];
  greedy?: number[];
}

/** What each cell must do: exact, or refused with a message matching the pattern (naming the option). */
const EXPECT: Record<string, 'exact' | RegExp> = {
  'llama (GQA, tied)': 'exact',
  'llama MQA': 'exact',
  'llama untied head': 'exact',
  'llama head_dim 16': 'exact',
  'llama attention_bias': 'exact',
  'llama mlp_bias': 'exact',
  'llama rope linear': 'exact',
  'llama rope dynamic': /rope scaling 'dynamic' is not supported/,
  'llama rope yarn': /rope scaling 'yarn' is not supported/,
  'llama3 rope': 'exact',
  'qwen2 (qkv bias)': 'exact',
  'mistral sliding_window': 'exact',
  'r 4, alpha 8, [q, v]': 'exact',
  'r 8, alpha 3, [q, v]': 'exact',
  '[k, o]': 'exact',
  '[gate, up, down]': 'exact',
  'r 8, alpha 3, all seven': 'exact',
  'use_rslora': 'exact',
  'target_modules regex': 'exact',
  'target_modules all-linear': 'exact',
  'target_modules one name as a string': /peft itself/,
  'rank_pattern': /rank_pattern/,
  'alpha_pattern': /alpha_pattern/,
  'layers_to_transform [0]': /layers_to_transform/,
  'bias lora_only': /bias "lora_only"/,
  'bias all': /bias "all"/,
  'modules_to_save lm_head': /modules_to_save/,
  'use_dora': /DoRA/,
  'init gaussian': 'exact',
  'init pissa': /init_lora_weights "pissa"/,
  'init olora': /init_lora_weights "olora"/,
  'fan_in_fan_out on Linear': 'exact',
  'lora_dropout 0.1': 'exact',
  'embed_tokens targeted': /embed_tokens/,
};

let ws: { root: string; cleanup: () => void };
let cells: Cell[] = [];

before(() => {
  ws = tempWorkspace();
  const out = join(ws.root, 'conformance');
  const r = spawnSync(python, [join(root, 'test', 'integration', 'conformance_peft.py'), out, join(root, 'models', 'moa-tiny', 'tokenizer.json')], {
    encoding: 'utf8',
    env: { ...process.env, PYTHONPATH: join(root, 'trainer'), TRANSFORMERS_VERBOSITY: 'error' },
    timeout: 300_000,
  });
  assert.equal(r.status, 0, r.stderr);
  cells = JSON.parse(readFileSync(join(out, 'cells.json'), 'utf8'));
});

after(() => ws?.cleanup());

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

type Outcome = { kind: 'exact'; diff: number } | { kind: 'refused'; message: string } | { kind: 'WRONG'; detail: string };

const engines = new Map<string, { base: BaseModelInfo; engine: OnnxEngine }>();
/** The cells our path imported exactly: their expert folders, for the GGUF column. */
const imported = new Map<number, { dir: string; base: BaseModelInfo }>();

async function baseFor(dir: string): Promise<{ base: BaseModelInfo; engine: OnnxEngine }> {
  let e = engines.get(dir);
  if (!e) {
    const base = readBaseModel(dir, dir);
    // Every projection: adapters of any target set run on the same graph.
    const exp = await ensureOnnxExport(workspaceLayout(ws.root), productLayout(root), dir, python, undefined, { targets: graphTargets([{ targetModules: ['gate_proj', 'up_proj', 'down_proj'] }]) });
    e = { base, engine: await OnnxEngine.load(exp.onnxPath, readOnnxModelInfo(exp.infoPath)) };
    engines.set(dir, e);
  }
  return e;
}

async function run(cell: Cell, i: number): Promise<Outcome> {
  if (cell.peft_refused) return { kind: 'refused', message: `peft itself refuses it (${cell.peft_refused.split('\n')[0]!.slice(0, 120)})` };
  let loaded: { base: BaseModelInfo; engine: OnnxEngine };
  let stack;
  let dir: string;
  try {
    loaded = await baseFor(cell.base);
    dir = importPeftAdapter(cell.adapter!, workspaceLayout(ws.root).expertsDir, loaded.base, `cell-${i}`).dir;
    stack = stackExperts(loaded.engine.info, [loadExpertWeights(dir, `cell-${i}`, loaded.base)]);
  } catch (e) {
    return { kind: 'refused', message: errorMessage(e) };
  }
  const { engine } = loaded;
  const V = engine.info.vocabSize;
  const ids = cell.ids!;
  const logits = await engine.logits(ids, stack, [1]);
  const diff = maxDiff(logits.subarray((ids.length - 1) * V, ids.length * V), cell.last_logits!);
  const greedy = await engine.generate(ids, { stack, expertWeights: [1], maxNewTokens: cell.greedy!.length, temperature: 0, topP: 1, seed: 0 });
  if (diff > TOL) return { kind: 'WRONG', detail: `logits differ by ${diff.toExponential(2)}` };
  if (greedy.tokens.join() !== cell.greedy!.join()) return { kind: 'WRONG', detail: `greedy ${greedy.tokens} ≠ ${cell.greedy}` };
  imported.set(i, { dir, base: loaded.base });
  return { kind: 'exact', diff };
}

test('every cell is imported and exact, or refused naming the file and the option; never a third outcome', { timeout: 900_000 }, async () => {
  const rows: string[] = ['| kind | cell | outcome |', '|---|---|---|'];
  const problems: string[] = [];
  for (const [i, cell] of cells.entries()) {
    const outcome = await run(cell, i);
    const expected = EXPECT[cell.name];
    const shown = outcome.kind === 'exact' ? `exact (logits within ${outcome.diff.toExponential(1)}, greedy equal)` : outcome.kind === 'refused' ? `refused: ${outcome.message.split('\n')[0]!.split(ws.root).join('…').slice(0, 160)}` : `**WRONG**: ${outcome.detail}`;
    rows.push(`| ${cell.kind} | ${cell.name} | ${shown} |`);
    if (expected === undefined) problems.push(`${cell.name}: no expected outcome declared`);
    else if (outcome.kind === 'WRONG') problems.push(`${cell.name}: accepted and wrong (${outcome.detail})`);
    else if (expected === 'exact' && outcome.kind !== 'exact') problems.push(`${cell.name}: expected exact, got ${shown}`);
    else if (expected instanceof RegExp) {
      if (outcome.kind !== 'refused') problems.push(`${cell.name}: expected a refusal, got ${shown}`);
      else if (!expected.test(outcome.message)) problems.push(`${cell.name}: refused, but the message does not name the option (${expected}): ${outcome.message}`);
      else if (!outcome.message.includes(ws.root) && !/peft itself/.test(outcome.message)) problems.push(`${cell.name}: the refusal does not name the file: ${outcome.message}`);
    }
  }
  console.log(`conformance matrix (transformers ${'+'} peft reference):\n${rows.join('\n')}`);
  for (const e of engines.values()) await e.engine.release();
  assert.deepEqual(problems, []);
  assert.equal(cells.length, Object.keys(EXPECT).length, 'every declared cell was generated');
});

/** What llama.cpp must do with each base's GGUF: the reference's greedy tokens, or a refusal naming the option. */
const EXPECT_GGUF: Record<string, 'same' | RegExp> = {
  'llama mlp_bias': /"mlp_bias"/,
  'mistral sliding_window': /"sliding_window" 8/,
};
/** moa-tiny's byte tokenizer's end of text, which the conformance bases share. */
const EOS = 257;

test('through GGUF in llama.cpp: every cell our path takes exactly gives transformers + peft\'s greedy tokens, or its base is refused naming the option', async () => {
  const llama = await loadLlamaCpp();
  const bases = new Map<string, LlamaModel | string>();
  const rows: string[] = ['| kind | cell | llama.cpp on our GGUF |', '|---|---|---|'];
  const problems: string[] = [];
  for (const [i, { dir, base }] of imported) {
    const cell = cells[i]!;
    let model = bases.get(cell.base);
    if (model === undefined) {
      const file = join(ws.root, `base-${bases.size}.gguf`);
      try {
        exportBaseGguf(base, file, 'f32');
        model = await llama.loadModel({ modelPath: file });
      } catch (e) {
        model = errorMessage(e);
      }
      bases.set(cell.base, model);
    }
    const expected = cell.kind === 'base' ? (EXPECT_GGUF[cell.name] ?? 'same') : 'same';
    let shown: string;
    if (typeof model === 'string') {
      shown = `refused: ${model.split(ws.root).join('…').slice(0, 140)}`;
      if (!(expected instanceof RegExp) || !expected.test(model) || !model.includes(base.dir)) problems.push(`${cell.name}: ${shown}`);
    } else {
      const adapter = join(ws.root, `cell-${i}.gguf`);
      exportExpertGguf(dir, `cell-${i}`, base, adapter);
      // llama.cpp ends at the end-of-text token; the reference decodes on past it.
      const eos = cell.greedy!.indexOf(EOS);
      const want = eos === -1 ? cell.greedy! : cell.greedy!.slice(0, eos);
      const got = await llamaGreedy(model, cell.ids!, want.length, EOS, { file: adapter, scale: 1 });
      const same = got.join() === want.join();
      shown = same ? `same greedy tokens${eos === -1 ? '' : ` (up to the end-of-text token, ${eos} of ${cell.greedy!.length})`}` : `**DIFFERENT**: ${got} ≠ ${want}`;
      if (!same || expected !== 'same') problems.push(`${cell.name}: ${shown} (expected ${expected})`);
    }
    rows.push(`| ${cell.kind} | ${cell.name} | ${shown} |`);
  }
  console.log(`GGUF column (llama.cpp ${'via'} node-llama-cpp vs transformers + peft):\n${rows.join('\n')}`);
  for (const m of bases.values()) if (typeof m !== 'string') await m.dispose();
  assert.deepEqual(problems, []);
  assert.ok(imported.size >= 20, `${imported.size} cells through llama.cpp`);
});
