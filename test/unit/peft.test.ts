import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportExpert, importPeftAdapter } from '../../src/core/adapters/peft';
import { writeSafetensorsF32 } from '../../src/core/adapters/safetensors';
import { listExperts, loadExpertWeights } from '../../src/core/adapters/store';
import { readBaseModel } from '../../src/core/models/base';
import { setAttached, setPinned, readExpertState } from '../../src/core/adapters/state';
import { workspaceLayout } from '../../src/core/paths';
import { expertCatalog, staleForBase } from '../../src/core/adapters/catalog';
import { repoRoot, tempWorkspace } from '../helpers/tmp';

const base = readBaseModel('builtin:moa-tiny', join(repoRoot(), 'models', 'moa-tiny'));

/** A PEFT folder as peft writes it, for the built-in base, with the given config overrides. */
function peftFolder(dir: string, cfg: Record<string, unknown> = {}, r = 4, breakShape = false): void {
  mkdirSync(dir, { recursive: true });
  const headDim = base.hiddenSize / base.numHeads;
  const dims: Record<string, [number, number]> = { q_proj: [base.hiddenSize, base.numHeads * headDim], v_proj: [base.hiddenSize, base.numKvHeads * headDim] };
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (let l = 0; l < base.numLayers; l++) {
    for (const [m, [inF, outF]] of Object.entries(dims)) {
      const p = `base_model.model.model.layers.${l}.self_attn.${m}`;
      tensors.set(`${p}.lora_A.weight`, { shape: [r, inF], data: new Float32Array(r * inF).fill(0.01) });
      const outRows = breakShape && l === 1 ? outF + 1 : outF;
      tensors.set(`${p}.lora_B.weight`, { shape: [outRows, r], data: new Float32Array(outRows * r).fill(0.02) });
    }
  }
  writeSafetensorsF32(join(dir, 'adapter_model.safetensors'), tensors);
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], ...cfg }));
}

test('a PEFT folder imports as an expert and exports back byte for byte', () => {
  const ws = tempWorkspace();
  try {
    const layout = workspaceLayout(ws.root);
    const src = join(ws.root, 'My Adapter');
    peftFolder(src, { use_rslora: true });
    const { dir } = importPeftAdapter(src, layout.expertsDir, base);
    assert.equal(dir, join(layout.expertsDir, 'my-adapter'));
    const listed = listExperts(layout.expertsDir);
    assert.deepEqual(listed.map((e) => [e.name, e.status]), [['my-adapter', 'ok']]);
    const w = loadExpertWeights(dir, 'my-adapter', base);
    assert.equal(w.scaling, 8 / Math.sqrt(4), 'rsLoRA scaling is alpha/sqrt(r)');
    assert.throws(() => importPeftAdapter(src, layout.expertsDir, base), /exists/);
    const out = join(ws.root, 'exported');
    exportExpert(dir, out);
    for (const f of ['adapter_config.json', 'adapter_model.safetensors']) assert.deepEqual(readFileSync(join(out, f)), readFileSync(join(src, f)));
    assert.throws(() => exportExpert(dir, out), /already holds/);
  } finally {
    ws.cleanup();
  }
});

test('a string target_modules is read as peft reads it: a regex over whole module names, or "all-linear"; the expert keeps the list', () => {
  const ws = tempWorkspace();
  try {
    const layout = workspaceLayout(ws.root);
    const src = join(ws.root, 'regex');
    peftFolder(src, { target_modules: '.*\\.(q_proj|v_proj)' });
    const { dir } = importPeftAdapter(src, layout.expertsDir, base);
    // The trainer accepts a list only: the imported expert says what the pattern selected.
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')).target_modules, ['q_proj', 'v_proj']);
    assert.deepEqual([...loadExpertWeights(dir, 'regex', base).modules.keys()].sort(), ['q_proj', 'v_proj']);
    // peft matches the whole name, so a bare module name as a string selects nothing.
    const bare = join(ws.root, 'bare');
    peftFolder(bare, { target_modules: 'q_proj' });
    assert.throws(() => importPeftAdapter(bare, layout.expertsDir, base), /target_modules "q_proj" must name Llama projections/);
    // "all-linear" means every projection: an adapter holding two of them is incomplete.
    const all = join(ws.root, 'all');
    peftFolder(all, { target_modules: 'all-linear' });
    assert.throws(() => importPeftAdapter(all, layout.expertsDir, base), /k_proj\.lora_A is present on 0 layers.*incomplete/);
    const broken = join(ws.root, 'broken');
    peftFolder(broken, { target_modules: '(q_proj' });
    assert.throws(() => importPeftAdapter(broken, layout.expertsDir, base), /"\(q_proj" is not a regular expression/);
  } finally {
    ws.cleanup();
  }
});

test('the importer refuses and accepts exactly the settings schemas/peft-refusals.json lists (the trainer is held to the same list)', () => {
  const ws = tempWorkspace();
  try {
    const layout = workspaceLayout(ws.root);
    const contract = JSON.parse(readFileSync(join(repoRoot(), 'schemas', 'peft-refusals.json'), 'utf8')) as { cases: { patch: Record<string, unknown>; option: string }[]; accepted: { patch: Record<string, unknown> }[] };
    contract.cases.forEach(({ patch, option }, i) => {
      const src = join(ws.root, `refused${i}`);
      peftFolder(src, patch);
      assert.throws(() => importPeftAdapter(src, layout.expertsDir, base, `refused${i}`), (e: Error) => e.message.toLowerCase().includes(option.toLowerCase()) && e.message.includes(src), `${JSON.stringify(patch)} names ${option}`);
    });
    contract.accepted.forEach(({ patch }, i) => {
      const src = join(ws.root, `accepted${i}`);
      peftFolder(src, patch);
      assert.doesNotThrow(() => importPeftAdapter(src, layout.expertsDir, base, `accepted${i}`), JSON.stringify(patch));
    });
  } finally {
    ws.cleanup();
  }
});

test('unsupported or mismatched adapters are refused with the file and the reason; nothing is written', () => {
  const ws = tempWorkspace();
  try {
    const layout = workspaceLayout(ws.root);
    const cases: [Record<string, unknown>, boolean, RegExp][] = [
      [{ use_dora: true }, false, /DoRA/],
      [{ modules_to_save: ['lm_head'] }, false, /modules_to_save/],
      [{ peft_type: 'IA3' }, false, /only LORA/],
      [{ target_modules: ['c_attn'] }, false, /Llama projections/],
      [{ fan_in_fan_out: true }, false, /Conv1D/],
      [{}, true, /layers\.1\.self_attn\.(q|v)_proj\.lora_B\.weight has shape/],
    ];
    cases.forEach(([cfg, breakShape, re], i) => {
      const src = join(ws.root, `bad${i}`);
      peftFolder(src, cfg, 4, breakShape);
      assert.throws(() => importPeftAdapter(src, layout.expertsDir, base), (e: Error) => re.test(e.message) && e.message.includes(src), `case ${i}: ${re}`);
    });
    const pickle = join(ws.root, 'pickled');
    mkdirSync(pickle);
    writeFileSync(join(pickle, 'adapter_config.json'), '{"peft_type":"LORA","r":4,"target_modules":["q_proj"]}');
    writeFileSync(join(pickle, 'adapter_model.bin'), 'not loaded');
    assert.throws(() => importPeftAdapter(pickle, layout.expertsDir, base), /pickle checkpoints are never loaded/);
    assert.ok(!existsSync(layout.expertsDir) || listExperts(layout.expertsDir).length === 0);
  } finally {
    ws.cleanup();
  }
});

test('attach, detach and pin are workspace state, not adapter files', () => {
  const ws = tempWorkspace();
  try {
    const layout = workspaceLayout(ws.root);
    assert.deepEqual(readExpertState(layout), { detached: [], pinned: null });
    setAttached(layout, 'python', false);
    setPinned(layout, 'docs');
    assert.deepEqual(readExpertState(layout), { detached: ['python'], pinned: 'docs' });
    setAttached(layout, 'docs', false);
    assert.equal(readExpertState(layout).pinned, null, 'detaching the pinned expert unpins it');
    setPinned(layout, 'python');
    assert.deepEqual(readExpertState(layout), { detached: ['docs'], pinned: 'python' }, 'pinning attaches');
    // Unreadable state counts as "all attached", and says so rather than meaning it in silence.
    writeFileSync(join(layout.moaDir, 'state.json'), '{broken');
    const broken = readExpertState(layout);
    assert.deepEqual([broken.detached, broken.pinned], [[], null]);
    assert.match(broken.problem ?? '', /state\.json: not valid JSON.*every expert counts as attached/);
    writeFileSync(join(layout.moaDir, 'state.json'), JSON.stringify({ detached: ['../../etc'], pinned: null }));
    assert.match(readExpertState(layout).problem ?? '', /"detached" must be a list of expert names/);
  } finally {
    ws.cleanup();
  }
});

test('an explicit head_dim in config.json shapes the LoRA (Gemma / Mistral-Nemo style), and more layers than the base are refused', () => {
  const ws = tempWorkspace();
  try {
    // A base whose head_dim (16) is not hidden / heads (64 / 8 = 8).
    const baseDir = join(ws.root, 'base');
    mkdirSync(baseDir);
    writeFileSync(join(baseDir, 'config.json'), JSON.stringify({ model_type: 'mistral', hidden_size: 64, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 16, num_hidden_layers: 2, intermediate_size: 96, vocab_size: 300 }));
    const wide = readBaseModel('wide', baseDir);
    assert.equal(wide.headDim, 16);
    const adapter = (layers: number) => {
      const dir = join(ws.root, `adapter${layers}`);
      mkdirSync(dir);
      const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
      for (let l = 0; l < layers; l++) {
        const p = `base_model.model.model.layers.${l}.self_attn.q_proj`;
        tensors.set(`${p}.lora_A.weight`, { shape: [2, 64], data: new Float32Array(128) });
        tensors.set(`${p}.lora_B.weight`, { shape: [8 * 16, 2], data: new Float32Array(256) });
      }
      writeSafetensorsF32(join(dir, 'adapter_model.safetensors'), tensors);
      writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj'] }));
      return dir;
    };
    const layout = workspaceLayout(ws.root);
    const w = loadExpertWeights(adapter(2), 'a', wide);
    assert.equal(w.modules.get('q_proj')!.outFeatures, 128, 'q_proj out = heads × head_dim, not hidden');
    assert.throws(() => importPeftAdapter(adapter(3), layout.expertsDir, wide, 'three'), /adapter has 3 layers but the base model wide has 2/);
  } finally {
    ws.cleanup();
  }
});

test('the catalogue gives every expert one state and freshness, from its folder, state.json and the base', () => {
  const ws = tempWorkspace();
  try {
    const layout = workspaceLayout(ws.root);
    for (const name of ['a', 'b', 'c']) {
      peftFolder(join(ws.root, 'src', name));
      importPeftAdapter(join(ws.root, 'src', name), layout.expertsDir, base);
    }
    writeFileSync(join(layout.expertsDir, 'c', 'adapter_model.safetensors'), 'not safetensors');
    setAttached(layout, 'b', false);
    const states = () => expertCatalog(layout, base.name).experts.map((e) => [e.name, e.state, e.freshness]);
    assert.deepEqual(states(), [['a', 'attached', 'unknown'], ['b', 'detached', 'unknown'], ['c', 'broken', 'unknown']]);
    assert.match(expertCatalog(layout, base.name).experts[2]!.reason ?? '', /adapter_model\.safetensors/);
    setPinned(layout, 'a');
    assert.deepEqual(states()[0], ['a', 'pinned', 'unknown']);
    // A broken expert is never counted among those a base change leaves stale: it serves nothing.
    assert.deepEqual(staleForBase(layout, 'models/other'), ['a', 'b']);
    assert.deepEqual(staleForBase(layout, base.name), []);
    assert.equal(expertCatalog(layout, 'models/other').experts[0]!.staleBecause, 'base');
    writeFileSync(join(layout.moaDir, 'state.json'), '{broken');
    assert.match(expertCatalog(layout, base.name).problem ?? '', /state\.json/);
  } finally {
    ws.cleanup();
  }
});
