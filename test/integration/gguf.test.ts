// Our GGUF files in llama.cpp itself, all real: the built-in base and an expert written by
// src/core/gguf, loaded by node-llama-cpp (llama.cpp's prebuilt CPU binary, installed by
// scripts/llama-cpp.mjs into bench/llama-cpp/), against our onnxruntime engine on the same
// weights: the same greedy tokens, with the expert and without it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { Cancelled } from '../../src/core/util/errors';
import { join } from 'node:path';
import { writeSafetensorsF32 } from '../../src/core/adapters/safetensors';
import { loadExpertWeights, moduleDims } from '../../src/core/adapters/store';
import { exportExpertGguf } from '../../src/core/gguf/adapter';
import { exportBaseGguf, interleaveRows, preTokenizerName } from '../../src/core/gguf/llama';
import { quantizeQ4_0, quantizeQ8_0, toHalf } from '../../src/core/gguf/write';
import { exportGgufOffThread } from '../../src/core/gguf/exportProtocol';
import { OnnxEngine } from '../../src/core/inference/engine';
import { stackExperts, type ExpertStack } from '../../src/core/inference/expertStack';
import { ensureOnnxExport } from '../../src/core/inference/export';
import { readOnnxModelInfo } from '../../src/core/inference/modelInfo';
import { readBaseModel } from '../../src/core/models/base';
import { productLayout, workspaceLayout } from '../../src/core/paths';
import { seededRandom } from '../../src/core/inference/sampling';
import { choosePython } from '../../src/core/trainer/python';
import { llamaGreedy, loadLlamaCpp, type Llama, type LlamaModel } from '../helpers/llamaCpp';
import { repoRoot, tempWorkspace } from '../helpers/tmp';

const root = repoRoot();
const baseDir = join(root, 'models', 'moa-tiny');
const MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const STEPS = 32;
const EOS = 257;
const PROMPTS = [
  'import os\n\n\ndef read_lines(path):\n    with open(path) as f:\n        return f.',
  '# Install\n\nRun the installer and follow the ',
  'class Store:\n    def __init__(self, name):\n        self.',
].map((p) => [256, ...Buffer.from(p)]);

let ws: { root: string; cleanup: () => void };
let engine: OnnxEngine;
let model: LlamaModel;
let llama: Llama;
let stack: ExpertStack;
let empty: ExpertStack;
let adapterFile: string;

before(async () => {
  ws = tempWorkspace();
  const layout = workspaceLayout(ws.root);
  const base = readBaseModel('builtin:moa-tiny', baseDir);
  // An expert on every projection (queries and keys are the ones llama.cpp reorders), rsLoRA
  // scaled so that the alpha written for llama.cpp is not the adapter's own.
  const dir = join(layout.expertsDir, 'probe');
  mkdirSync(dir, { recursive: true });
  const rand = seededRandom(7);
  const r = 4;
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (let l = 0; l < base.numLayers; l++) {
    for (const m of MODULES) {
      const [inF, outF] = moduleDims(base)[m]!;
      const p = `base_model.model.model.layers.${l}.${m.endsWith('_proj') && ['q', 'k', 'v', 'o'].includes(m[0]!) ? 'self_attn' : 'mlp'}.${m}`;
      tensors.set(`${p}.lora_A.weight`, { shape: [r, inF], data: Float32Array.from({ length: r * inF }, () => (rand() - 0.5) * 0.3) });
      tensors.set(`${p}.lora_B.weight`, { shape: [outF, r], data: Float32Array.from({ length: outF * r }, () => (rand() - 0.5) * 0.3) });
    }
  }
  writeSafetensorsF32(join(dir, 'adapter_model.safetensors'), tensors);
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r, lora_alpha: 6, use_rslora: true, target_modules: MODULES }));
  const weights = loadExpertWeights(dir, 'probe', base);

  const exp = await ensureOnnxExport(layout, productLayout(root), baseDir, choosePython(root).command, undefined, { targets: MODULES });
  engine = await OnnxEngine.load(exp.onnxPath, readOnnxModelInfo(exp.infoPath), 1);
  stack = stackExperts(engine.info, [weights]);
  empty = stackExperts(engine.info, []);

  const baseFile = join(ws.root, 'moa-tiny.gguf');
  exportBaseGguf(base, baseFile, 'f32');
  adapterFile = join(ws.root, 'probe.gguf');
  exportExpertGguf(dir, 'probe', base, adapterFile);
  llama = await loadLlamaCpp();
  model = await llama.loadModel({ modelPath: baseFile });
});

after(async () => {
  await engine?.release();
  await model?.dispose();
  ws?.cleanup();
});

const theirs = (prompt: number[], scale?: number) => llamaGreedy(model, prompt, STEPS, EOS, scale === undefined ? undefined : { file: adapterFile, scale });

async function ours(prompt: number[], s: ExpertStack): Promise<number[]> {
  const r = await engine.generate(prompt, { stack: s, expertWeights: s.names.length ? [1] : [0], maxNewTokens: STEPS, temperature: 0, topP: 1, seed: 0, stopTokens: [] });
  return r.tokens;
}

test('llama.cpp runs our base GGUF: the same 32 greedy tokens as our engine on every prompt, and our tokenizer\'s ids', async () => {
  for (const p of PROMPTS) assert.deepEqual(await theirs(p), await ours(p, empty), Buffer.from(p.slice(1)).toString());
  assert.deepEqual(model.tokenize('déf f(x):\n  return x'), [...Buffer.from('déf f(x):\n  return x')], 'bytes in, the same byte ids out');
});

test('llama.cpp runs our expert GGUF as a LoRA: the same 32 greedy tokens as our engine with that expert; at scale 0, the base\'s', async () => {
  let differs = 0;
  for (const p of PROMPTS) {
    const withExpert = await ours(p, stack);
    assert.deepEqual(await theirs(p, 1), withExpert, Buffer.from(p.slice(1)).toString());
    const plain = await ours(p, empty);
    assert.deepEqual(await theirs(p, 0), plain, 'scale 0 is the base alone');
    if (withExpert.join() !== plain.join()) differs++;
  }
  assert.ok(differs >= 2, `the expert changes the continuation (${differs} of ${PROMPTS.length} prompts): the comparison is not vacuous`);
});

test('f16, q8_0 and q4_0 bases (Ollama\'s usual types) are the size they should be, load in llama.cpp and start as the f32 base does', async () => {
  const base = readBaseModel('builtin:moa-tiny', baseDir);
  const f32 = statSync(join(ws.root, 'moa-tiny.gguf')).size;
  for (const [type, ratio] of [['f16', 0.5], ['q8_0', 34 / 128], ['q4_0', 18 / 128]] as const) {
    const file = join(ws.root, `${type}.gguf`);
    exportBaseGguf(base, file, type);
    // Norms stay f32 (a few KB): the size is the type's share of the weights.
    assert.ok(Math.abs(statSync(file).size / f32 - ratio) < 0.02, `${type}: ${statSync(file).size} vs ${f32} bytes`);
    const m = await llama.loadModel({ modelPath: file });
    try {
      let firstAgree = 0;
      for (const prompt of PROMPTS) {
        const got = await llamaGreedy(m, prompt, 8, EOS);
        const want = (await ours(prompt, empty)).slice(0, 8);
        const same = got.findIndex((t, i) => t !== want[i]);
        console.log(`# ${type} vs f32: the first ${same === -1 ? 8 : same} of 8 greedy tokens agree`);
        if (got[0] === want[0]) firstAgree++;
      }
      // 4-bit blocks move a 192-wide model's logits enough to swap near-tied first choices on some
      // prompts (its bytes are gguf-py's exactly, below); 8 and 16 bits must agree on every prompt.
      assert.ok(firstAgree >= (type === 'q4_0' ? PROMPTS.length - 1 : PROMPTS.length), `${type}: the first greedy token agrees with f32 on ${firstAgree} of ${PROMPTS.length} prompts`);
    } finally {
      await m.dispose();
    }
  }
  // ggml's q8_0 block: an f16 scale of max|x| / 127, then the values rounded (halves away from zero).
  const x = new Float32Array(32);
  x.set([-254, -127, 63, 0.5, 238]);
  const block = quantizeQ8_0(x);
  assert.equal(block.readUInt16LE(0), 0x4000, 'd = 254 / 127 = 2');
  assert.deepEqual([0, 1, 2, 3, 4].map((i) => block.readInt8(2 + i)), [-127, -64, 32, 0, 119]);
});

test('q8_0 and q4_0 blocks are byte for byte what llama.cpp\'s gguf-py quantizes; gguf-py reads our q4_0 file back as written', () => {
  // Random rows with what the rounding rules are about: an all-zero block, a block whose largest
  // magnitude is negative, ties of the largest magnitude, values at the rounding boundaries.
  const rand = seededRandom(11);
  const x = Float32Array.from({ length: 32 * 64 }, () => (rand() - 0.5) * 4);
  x.fill(0, 0, 32);
  x[32] = -3;
  x[64] = 2.5;
  x[65] = -2.5;
  for (let i = 96; i < 128; i++) x[i] = (i - 112) / 2;
  const raw = join(ws.root, 'blocks.f32');
  writeFileSync(raw, Buffer.from(x.buffer));
  const py = `import sys, numpy as np
from gguf.quants import quantize
from gguf.constants import GGMLQuantizationType as Q
x = np.fromfile(sys.argv[1], dtype=np.float32).reshape(-1, 256)
sys.stdout.write(quantize(x, Q.Q8_0).tobytes().hex() + " " + quantize(x, Q.Q4_0).tobytes().hex())`;
  const python = choosePython(root).command;
  const r = spawnSync(python, ['-c', py, raw], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const [q8, q4] = r.stdout.trim().split(' ');
  assert.equal(quantizeQ8_0(x).toString('hex'), q8, 'q8_0 bytes');
  assert.equal(quantizeQ4_0(x).toString('hex'), q4, 'q4_0 bytes');

  const file = join(ws.root, 'q4_0.gguf');
  const read = spawnSync(python, ['-c', `import sys, json
from gguf import GGUFReader
r = GGUFReader(sys.argv[1])
print(json.dumps({"type": int(r.fields["general.file_type"].parts[-1][0]), "tensors": {t.name: [t.tensor_type.name, [int(d) for d in t.shape]] for t in r.tensors}}))`, file], { encoding: 'utf8' });
  assert.equal(read.status, 0, read.stderr);
  const got = JSON.parse(read.stdout) as { type: number; tensors: Record<string, [string, number[]]> };
  assert.equal(got.type, 2, 'general.file_type is llama.cpp\'s MOSTLY_Q4_0');
  const base = readBaseModel('builtin:moa-tiny', baseDir);
  assert.deepEqual(got.tensors['blk.0.attn_q.weight'], ['Q4_0', [base.hiddenSize, base.numHeads * base.headDim]]);
  assert.deepEqual(got.tensors['blk.0.attn_norm.weight'], ['F32', [base.hiddenSize]]);
});

test('a Hugging Face byte-level BPE tokenizer in our GGUF tokenizes in llama.cpp as the tokenizers package does', async () => {
  // A tiny Llama folder around the GPT-2-style fixture tokenizer (random weights: only the vocabulary matters here).
  const fixture = join(root, 'test', 'fixtures', 'tokenizers', 'bytelevel-bpe');
  const dir = join(ws.root, 'bpe-model');
  mkdirSync(dir, { recursive: true });
  const cfg = { model_type: 'llama', vocab_size: 600, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 2, max_position_embeddings: 128, rms_norm_eps: 1e-5, tie_word_embeddings: true, bos_token_id: null, eos_token_id: 0 };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  writeFileSync(join(dir, 'tokenizer.json'), readFileSync(join(fixture, 'tokenizer.json')));
  writeFileSync(join(dir, 'tokenizer_config.json'), readFileSync(join(fixture, 'tokenizer_config.json')));
  const rand = seededRandom(3);
  const t = (shape: number[]) => ({ shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rand() - 0.5) });
  const w = new Map([['model.embed_tokens.weight', t([600, 16])], ['model.norm.weight', t([16])]]);
  for (const [k, shape] of Object.entries({ 'input_layernorm.weight': [16], 'post_attention_layernorm.weight': [16], 'self_attn.q_proj.weight': [16, 16], 'self_attn.k_proj.weight': [16, 16], 'self_attn.v_proj.weight': [16, 16], 'self_attn.o_proj.weight': [16, 16], 'mlp.gate_proj.weight': [32, 16], 'mlp.up_proj.weight': [32, 16], 'mlp.down_proj.weight': [16, 32] })) w.set(`model.layers.0.${k}`, t(shape));
  writeSafetensorsF32(join(dir, 'model.safetensors'), w);
  const file = join(ws.root, 'bpe.gguf');
  exportBaseGguf(readBaseModel(dir, dir), file, 'f32');
  const m = await llama.loadModel({ modelPath: file });
  try {
    const reference = JSON.parse(readFileSync(join(fixture, 'reference.json'), 'utf8')) as { text: string; ids: number[] }[];
    for (const r of reference) assert.deepEqual(m.tokenize(r.text, true), r.ids, JSON.stringify(r.text));
    assert.ok(reference.length >= 5 && reference.some((r) => r.ids.length < Buffer.byteLength(r.text) / 2), 'merges are in play: not byte per byte');
  } finally {
    await m.dispose();
  }
});

test('the editor\'s export runs off its thread: an Ollama folder (base, adapter, Modelfile), and a refusal comes back as the error', async () => {
  const dir = join(ws.root, 'ollama');
  const req = { format: 'ollama' as const, expertDir: join(ws.root, '.moa', 'experts', 'probe'), name: 'probe', baseName: 'builtin:moa-tiny', baseDir, dir, type: 'f16' as const, force: false };
  const worker = join(root, 'dist', 'ggufExport.js');
  const out = await exportGgufOffThread(worker, req);
  assert.deepEqual(out.files.map((f) => f.slice(dir.length + 1)), ['moa-tiny.gguf', 'probe.gguf', 'Modelfile']);
  assert.equal(readFileSync(join(dir, 'Modelfile'), 'utf8').split('\n').filter((l) => /^(FROM|ADAPTER) /.test(l)).join('|'), 'FROM ./moa-tiny.gguf|ADAPTER ./probe.gguf');
  assert.match(out.create ?? '', /^ollama create moa-probe -f /);
  await assert.rejects(exportGgufOffThread(worker, req), /Modelfile: already there/);
  await assert.rejects(exportGgufOffThread(worker, { ...req, expertDir: join(ws.root, 'nowhere'), force: true }), /nowhere/);
  // Cancelled (the progress notification's Cancel): the file being written is not left half-done.
  const cancelled = join(ws.root, 'cancelled');
  await assert.rejects(exportGgufOffThread(worker, { ...req, dir: cancelled }, AbortSignal.abort()), (e: unknown) => e instanceof Cancelled);
  assert.deepEqual(readdirSync(cancelled), [], 'no GGUF and no temporary file');
  // A process killed mid-write (Ctrl+C on the CLI) cannot clean up: the next export there does.
  const stale = join(cancelled, '.moa-tiny.gguf.tmp-2147483646-0badf00d');
  writeFileSync(stale, 'half a file');
  await exportGgufOffThread(worker, { ...req, dir: cancelled });
  assert.deepEqual(readdirSync(cancelled).sort(), ['Modelfile', 'moa-tiny.gguf', 'probe.gguf'], 'the dead writer\'s temporary file is gone');
});

test('GGUF pieces: half floats round to nearest even, query rows interleave per head, files are GGUF v3', () => {
  assert.deepEqual([1, -2, 0.1, 65504, 1e-8, 70000].map(toHalf), [0x3c00, 0xc000, 0x2e66, 0x7bff, 0, 0x7c00]);
  // Two heads of four rows (one column): halves [a0 a1 | b0 b1] become pairs [a0 b0 a1 b1].
  assert.deepEqual([...interleaveRows(Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]), 8, 1, 4)], [0, 2, 1, 3, 4, 6, 5, 7]);
  // The split rule by name, or a refusal naming the file: llama.cpp would tokenize otherwise.
  const llama3 = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
  const seq = (...p: unknown[]) => ({ type: 'Sequence', pretokenizers: p });
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, use_regex: false };
  assert.equal(preTokenizerName({ type: 'ByteLevel', use_regex: true }, 'f'), 'gpt-2');
  assert.equal(preTokenizerName(seq({ type: 'Split', pattern: { Regex: llama3 }, behavior: 'Isolated' }, byteLevel), 'f'), 'llama-bpe');
  assert.equal(preTokenizerName(seq({ type: 'Split', pattern: { Regex: llama3.replace('\\p{N}{1,3}', '\\p{N}') } }, byteLevel), 'f'), 'qwen2');
  assert.equal(preTokenizerName(seq({ type: 'Digits', individual_digits: true }, { type: 'ByteLevel', use_regex: true }), 'f'), 'starcoder');
  assert.throws(() => preTokenizerName(seq({ type: 'Split', pattern: { Regex: '\\s+' } }, byteLevel), '/x/tokenizer.json'), /\/x\/tokenizer\.json: pre_tokenizer .* has no llama\.cpp equivalent/);
  const head = readFileSync(adapterFile).subarray(0, 8);
  assert.equal(head.subarray(0, 4).toString('ascii'), 'GGUF');
  assert.equal(head.readUInt32LE(4), 3);
  assert.ok(existsSync(adapterFile));
});
