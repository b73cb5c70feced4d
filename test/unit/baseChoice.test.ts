import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { describeBase, formatBytes, setBaseModel, trainingMemory } from '../../src/core/models/choice';
import { expertFreshness } from '../../src/core/adapters/catalog';
import { productLayout } from '../../src/core/paths';
import { repoRoot, tempWorkspace } from '../helpers/tmp';

const product = productLayout(repoRoot());

test('the built-in base described: parameters from config.json, weights on disk, its FIM tokens', () => {
  const d = describeBase('builtin:moa-tiny', product, '/nowhere');
  assert.equal(d.info.modelType, 'llama');
  assert.ok(d.info.parameters > 1e6 && d.info.parameters < 3e6, String(d.info.parameters));
  assert.ok(Math.abs(d.sizeBytes - d.info.parameters * 4) < 0.01 * d.sizeBytes, 'fp32 weights: 4 bytes a parameter');
  assert.equal(d.fim, 'starcoder');
});

test('the training memory estimate: weights by precision, adapters by rank and domains, activations by tokens', () => {
  const b = describeBase('builtin:moa-tiny', product, '/nowhere').info;
  const t = { r: 8, targetModules: ['q_proj', 'v_proj'], batchSize: 8, seqLen: 128, domains: 4, weightBytes: 4 };
  const m = trainingMemory(b, t);
  assert.equal(m.weights, b.parameters * 4);
  const q = b.numHeads * b.headDim;
  const kv = b.numKvHeads * b.headDim;
  assert.equal(m.adapters, 4 * b.numLayers * 8 * ((b.hiddenSize + q) + (b.hiddenSize + kv)) * 16);
  assert.equal(m.total, m.weights + m.adapters + m.activations);
  assert.equal(trainingMemory(b, { ...t, batchSize: 16 }).activations, 2 * m.activations, 'twice the rows, twice the activations');
  assert.equal(trainingMemory(b, { ...t, weightBytes: 2 }).weights, m.weights / 2);
  assert.equal(formatBytes(1536), '1.5 KB');
  assert.equal(formatBytes(3 * 2 ** 30), '3.0 GB');
});

test('changing the base keeps the other keys and makes experts of the old base stale', () => {
  const ws = tempWorkspace({ '.moa/moa.json': JSON.stringify({ version: 1, baseModel: 'builtin:moa-tiny', domains: [], custom: 7 }) });
  try {
    const file = join(ws.root, '.moa', 'moa.json');
    setBaseModel(file, 'models/qwen');
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { version: 1, baseModel: 'models/qwen', domains: [], custom: 7 });
  } finally {
    ws.cleanup();
  }
  const meta = (base?: string) => ({ meta: { fingerprint: 'f', ...(base ? { base_model: base } : {}) } });
  assert.deepEqual(expertFreshness(meta('builtin:moa-tiny'), 'f', 'models/qwen'), { freshness: 'stale', staleBecause: 'base' });
  assert.deepEqual(expertFreshness(meta('models/qwen'), 'f', 'models/qwen'), { freshness: 'fresh' });
  assert.deepEqual(expertFreshness(meta('models/qwen'), 'g', 'models/qwen'), { freshness: 'stale', staleBecause: 'data' });
  assert.deepEqual(expertFreshness(meta(), 'f', 'models/qwen'), { freshness: 'fresh' }, 'no base recorded: judged by its data');
  assert.deepEqual(expertFreshness(meta(), undefined), { freshness: 'unknown' }, 'no dataset: unknown');
});
