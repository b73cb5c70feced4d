import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildPrefixPrompt, decodeCompletion, offsetAt } from '../../src/core/inference/prompt';
import { sampleToken, seededRandom, argmax } from '../../src/core/inference/sampling';
import { stackExperts } from '../../src/core/inference/expertStack';
import type { OnnxModelInfo } from '../../src/core/inference/modelInfo';
import type { ExpertWeights } from '../../src/core/adapters/store';
import { ByteTokenizer } from '../../src/core/tokenizer/bytes';

test('offsetAt maps 1-based line/column to a character offset, clamped to the line', () => {
  const text = 'ab\ncdef\n\nxyz';
  assert.equal(offsetAt(text, 1, 1), 0);
  assert.equal(offsetAt(text, 2, 3), 5);
  assert.equal(offsetAt(text, 2, 99), 7);
  assert.equal(offsetAt(text, 4, 2), 10);
  assert.equal(offsetAt(text, 40, 1), text.length);
});

test('the prompt keeps the end of the prefix and never starts inside a character', () => {
  const tok = new ByteTokenizer();
  const p = buildPrefixPrompt('aé€', tok, 4);
  assert.equal(p[0], 256);
  // 'é' is 2 bytes, '€' is 3: the last 4 bytes start inside 'é', so the cut moves to '€'
  assert.deepEqual(Array.from(p.subarray(1)), Array.from(Buffer.from('€')));
  assert.equal(buildPrefixPrompt('hi', tok, 100).length, 3);
});

test('decodeCompletion drops a trailing partial character', () => {
  const euro = Buffer.from('x€');
  assert.equal(decodeCompletion(euro), 'x€');
  assert.equal(decodeCompletion(euro.subarray(0, 3)), 'x');
  assert.equal(decodeCompletion(Buffer.from('ok')), 'ok');
});

test('greedy picks the argmax; seeded sampling repeats and respects top-p', () => {
  const row = Float32Array.from([0.1, 5, 0.2, 4.9]);
  assert.equal(sampleToken(row, { temperature: 0, topP: 1 }, Math.random), 1);
  assert.equal(argmax([1, 3, 2]), 1);
  const draw = (seed: number) => {
    const r = seededRandom(seed);
    return Array.from({ length: 20 }, () => sampleToken(row, { temperature: 1, topP: 0.9 }, r));
  };
  assert.deepEqual(draw(7), draw(7));
  const picks = new Set(draw(3));
  assert.ok([...picks].every((t) => t === 1 || t === 3), 'top-p 0.9 keeps only the two likely tokens');
});

test('stackExperts pads ranks with zeros and folds the scaling into B', () => {
  const info: OnnxModelInfo = { numLayers: 1, numKvHeads: 1, headDim: 2, hiddenSize: 2, vocabSize: 4, targetModules: ['q_proj'], modules: { q_proj: { in: 2, out: 2 } }, bosTokenId: 0, eosTokenId: 1, maxPositions: 64, kvInPlace: false };
  const e1: ExpertWeights = { name: 'a', r: 1, scaling: 2, modules: new Map([['q_proj', { inFeatures: 2, outFeatures: 2, A: [Float32Array.from([1, 2])], B: [Float32Array.from([3, 4])] }]]) };
  const e2: ExpertWeights = { name: 'b', r: 2, scaling: 1, modules: new Map([['q_proj', { inFeatures: 2, outFeatures: 2, A: [Float32Array.from([1, 0, 0, 1])], B: [Float32Array.from([5, 6, 7, 8])] }]]) };
  const s = stackExperts(info, [e1, e2]);
  const q = s.modules.get('q_proj')!;
  assert.deepEqual(q.dimsA, [1, 2, 2, 2]);
  assert.deepEqual(q.dimsB, [1, 2, 2, 2]);
  assert.deepEqual(Array.from(q.A), [1, 2, 0, 0, 1, 0, 0, 1]);
  assert.deepEqual(Array.from(q.B), [6, 0, 8, 0, 5, 6, 7, 8]);
  const none = stackExperts(info, []);
  assert.deepEqual(none.modules.get('q_proj')!.dimsA, [1, 1, 1, 2]);
  assert.ok(none.modules.get('q_proj')!.B.every((x) => x === 0));
  // An expert with a module the graph has no input for is an error, never half an expert.
  const mlp: ExpertWeights = { ...e1, name: 'mlp', modules: new Map([...e1.modules, ['down_proj', e1.modules.get('q_proj')!]]) };
  assert.throws(() => stackExperts(info, [mlp]), /expert mlp targets down_proj, which this ONNX graph takes no LoRA input for \(q_proj\)/);
});

test('the graph takes LoRA inputs for attention and every projection the experts target, in one order', async () => {
  const { graphTargets, exportKey } = await import('../../src/core/inference/export');
  const { repoRoot } = await import('../helpers/tmp');
  const { join } = await import('node:path');
  assert.deepEqual(graphTargets([]), ['q_proj', 'k_proj', 'v_proj', 'o_proj']);
  assert.deepEqual(graphTargets([{ targetModules: ['down_proj', 'q_proj'] }, { targetModules: ['gate_proj'] }, {}]), ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'down_proj']);
  const dir = join(repoRoot(), 'models', 'moa-tiny');
  // Attention-only workspaces keep the graph they had; MLP targets are another graph.
  assert.equal(exportKey(dir, { targets: ['v_proj', 'q_proj'] }), exportKey(dir));
  assert.notEqual(exportKey(dir, { targets: ['down_proj'] }), exportKey(dir));
  // Quantized weights are other graphs; f32 named or not is the one workspaces already have.
  const keys = (['f32', 'int8', 'int4'] as const).map((weights) => exportKey(dir, { weights }));
  assert.equal(keys[0], exportKey(dir));
  assert.equal(new Set(keys).size, 3);
});

test('completions decode on one thread for small models and leave larger ones to onnxruntime', async () => {
  const { decodeThreads, SINGLE_THREAD_BELOW_HIDDEN } = await import('../../src/core/inference/engine');
  assert.equal(decodeThreads({ hiddenSize: 192 }), 1, 'moa-tiny');
  assert.equal(decodeThreads({ hiddenSize: SINGLE_THREAD_BELOW_HIDDEN - 1 }), 1);
  assert.equal(decodeThreads({ hiddenSize: SINGLE_THREAD_BELOW_HIDDEN }), 0);
  assert.equal(decodeThreads({ hiddenSize: 896 }), 0, 'Qwen2.5-0.5B: one thread per core');
});

test('stop rules: end of line, end of block, leading newlines do not count', async () => {
  const { applyStop } = await import('../../src/core/inference/stop');
  assert.deepEqual(applyStop('x = 1\ny = 2', 'line'), { text: 'x = 1', done: true });
  assert.deepEqual(applyStop('\n    return x\n', 'line'), { text: '\n    return x', done: true });
  assert.deepEqual(applyStop('partial', 'line'), { text: 'partial', done: false });
  assert.deepEqual(applyStop('a\nb\n\nc', 'block'), { text: 'a\nb', done: true });
  assert.deepEqual(applyStop('\n\n  a\n  \n', 'block'), { text: '\n\n  a', done: true });
  assert.deepEqual(applyStop('a\nb', 'none'), { text: 'a\nb', done: false });
});

test('the LRU cache evicts the least recently used entry', async () => {
  const { LruCache } = await import('../../src/core/util/lru');
  const c = new LruCache<string, number>(2);
  c.set('a', 1);
  c.set('b', 2);
  assert.equal(c.get('a'), 1);
  c.set('c', 3);
  assert.equal(c.get('b'), undefined, 'b was least recently used');
  assert.equal(c.get('a'), 1);
  assert.equal(c.size, 2);
});
