import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cachedHfModels, hubCacheDir, parseHfName, resolveHfModel } from '../../src/core/models/hfCache';
import { readBaseModel, resolveBaseModelDir } from '../../src/core/models/base';
import { baseChoices } from '../../src/core/models/choice';
import { productLayout } from '../../src/core/paths';
import { repoRoot, tempWorkspace } from '../helpers/tmp';

/** A hub cache as the hub client writes it: refs/main → commit, snapshot files linking into blobs/. */
function hubModel(cache: string, repo: string, commit: string, files: Record<string, string>, refs: Record<string, string> = { main: commit }): void {
  const folder = join(cache, `models--${repo.replace('/', '--')}`);
  mkdirSync(join(folder, 'blobs'), { recursive: true });
  mkdirSync(join(folder, 'snapshots', commit), { recursive: true });
  mkdirSync(join(folder, 'refs'), { recursive: true });
  for (const [ref, c] of Object.entries(refs)) writeFileSync(join(folder, 'refs', ref), c);
  Object.entries(files).forEach(([name, src], i) => {
    copyFileSync(src, join(folder, 'blobs', `blob${i}`));
    symlinkSync(join('..', '..', 'blobs', `blob${i}`), join(folder, 'snapshots', commit, name));
  });
}

test('hf:ORG/NAME[@REVISION] resolves in the Hugging Face cache as the hub client lays it out, never downloading', () => {
  const ws = tempWorkspace();
  const saved = process.env['HF_HUB_CACHE'];
  try {
    const cache = join(ws.root, 'hub');
    const tiny = join(repoRoot(), 'models', 'moa-tiny');
    const files = Object.fromEntries(['config.json', 'tokenizer.json', 'model.safetensors'].map((f) => [f, join(tiny, f)]));
    hubModel(cache, 'acme/tiny-coder', 'c0ffee1', files, { main: 'c0ffee1', v2: 'c0ffee1' });
    writeFileSync(join(ws.root, 'gpt2.json'), JSON.stringify({ model_type: 'gpt2', hidden_size: 8, num_attention_heads: 2, num_hidden_layers: 1, intermediate_size: 8, vocab_size: 300 }));
    hubModel(cache, 'acme/other-arch', 'beef', { 'config.json': join(ws.root, 'gpt2.json') });
    mkdirSync(join(cache, 'datasets--acme--data'), { recursive: true });

    const snapshot = join(cache, 'models--acme--tiny-coder', 'snapshots', 'c0ffee1');
    assert.equal(resolveHfModel('hf:acme/tiny-coder', cache), snapshot);
    assert.equal(resolveHfModel('hf:acme/tiny-coder@v2', cache), snapshot, 'a branch or tag through refs/');
    assert.equal(resolveHfModel('hf:acme/tiny-coder@c0ffee1', cache), snapshot, 'a commit directly');
    assert.throws(() => resolveHfModel('hf:acme/tiny-coder@v3', cache), (e: Error & { hint?: string }) => /has no snapshot for "v3"/.test(e.message) && e.hint === 'MoA Studio never downloads models; run: hf download acme/tiny-coder --revision v3');
    assert.throws(() => resolveHfModel('hf:acme/absent', cache), (e: Error & { hint?: string }) => /not in the Hugging Face cache/.test(e.message) && /run: hf download acme\/absent$/.test(e.hint ?? ''));
    for (const bad of ['hf:../etc', 'hf:a/b/c', 'hf:a/..', 'hf:a/b@../x', 'hf:/x']) assert.throws(() => parseHfName(bad), /is not a Hugging Face model name/, bad);

    // Through the one resolver every reader uses, with the files behind the snapshot's links.
    process.env['HF_HUB_CACHE'] = cache;
    assert.equal(hubCacheDir(), cache);
    const dir = resolveBaseModelDir('hf:acme/tiny-coder', productLayout(repoRoot()), ws.root);
    assert.equal(readBaseModel('hf:acme/tiny-coder', dir).numLayers, 4);
    assert.deepEqual(cachedHfModels(cache).map((m) => m.name), ['hf:acme/other-arch', 'hf:acme/tiny-coder']);
    assert.deepEqual(baseChoices(productLayout(repoRoot()), ws.root).map((c) => c.name), ['builtin:moa-tiny', 'hf:acme/tiny-coder'], 'an architecture we do not train is not offered');
  } finally {
    if (saved === undefined) delete process.env['HF_HUB_CACHE'];
    else process.env['HF_HUB_CACHE'] = saved;
    ws.cleanup();
  }
  assert.equal(hubCacheDir({ HF_HOME: '/h' }), join('/h', 'hub'));
  assert.equal(hubCacheDir({ HOME: '/x', XDG_CACHE_HOME: '/c' }), join('/c', 'huggingface', 'hub'));
});
