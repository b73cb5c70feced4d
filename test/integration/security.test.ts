// A cloned repository is untrusted input: nothing in it may run as the trainer, no path read from
// its files may lead outside its folder, and no size it claims is believed before it is checked.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readRouterInfo } from '../../src/core/adapters/router';
import { readManifest } from '../../src/core/data/shards';
import { workspaceLayout } from '../../src/core/paths';
import { moa, root, twoDomainFiles } from '../helpers/moaCli';
import { tempWorkspace } from '../helpers/tmp';

const MARKER = 'PLANTED-CODE-RAN';
let ws: { root: string; cleanup: () => void };

/** Python that, if ever imported, leaves a file behind (and would shadow the real module). */
const planted = (name: string) => `import pathlib\npathlib.Path(${JSON.stringify(join('@WS@', MARKER))}).write_text(${JSON.stringify(name)})\n`;

before(() => {
  ws = tempWorkspace(twoDomainFiles(6));
  const plant = (rel: string, what: string) => {
    mkdirSync(join(ws.root, rel, '..'), { recursive: true });
    writeFileSync(join(ws.root, rel), planted(what).replace('@WS@', ws.root));
  };
  plant('moa_trainer/__init__.py', 'moa_trainer package');
  plant('moa_trainer/__main__.py', 'moa_trainer main');
  plant('torch.py', 'torch');
  plant('numpy.py', 'numpy');
  plant('safetensors.py', 'safetensors');
  plant('json.py', 'json');
});

after(() => ws.cleanup());

test('modules planted at the workspace root never run: doctor, train and the export use the product\'s own', () => {
  // From inside the workspace, as a user who cloned it would run them.
  assert.equal(moa(ws.root, ['init']).code, 0);
  const doctor = moa(ws.root, ['doctor']);
  assert.equal(doctor.code, 0, doctor.stderr);
  const train = moa(ws.root, ['train', '--steps', '2', '--stages', 'experts']);
  assert.equal(train.code, 0, train.stderr);
  const complete = moa(ws.root, ['complete', 'src/mod0.py', '--line', '4', '--col', '1', '--max-tokens', '2']);
  assert.equal(complete.code, 0, complete.stderr);
  assert.ok(!existsSync(join(ws.root, MARKER)), `planted code ran: ${existsSync(join(ws.root, MARKER)) ? readFileSync(join(ws.root, MARKER), 'utf8') : ''}`);
});

test('a router.json whose weights path leads outside the router folder is refused, quickly', () => {
  const layout = workspaceLayout(ws.root);
  mkdirSync(layout.routerDir, { recursive: true });
  writeFileSync(join(ws.root, 'notes.txt'), 'a file in no domain: the learned router would decide\n');
  for (const weights of ['../../../../dev/zero', '/dev/zero', '../experts/python/adapter_model.safetensors']) {
    writeFileSync(join(layout.routerDir, 'router.json'), JSON.stringify({ v: 1, experts: ['python', 'markdown'], weights, weights_sha256: 'x' }));
    const info = readRouterInfo(layout.routerDir);
    assert.equal(info?.status, 'broken');
    assert.match(info?.reason ?? '', /must be relative|leads outside/);
    const t0 = Date.now();
    const r = moa(ws.root, ['route', 'notes.txt'], { timeout: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(Date.now() - t0 < 30_000);
  }
  // A weights file that is a device, inside the folder, is not read either.
  writeFileSync(join(layout.routerDir, 'router.json'), JSON.stringify({ v: 1, experts: ['python'], weights: 'zero', weights_sha256: 'x' }));
  try {
    require('node:fs').symlinkSync('/dev/zero', join(layout.routerDir, 'zero'));
  } catch {
    // exists from an earlier run
  }
  assert.match(readRouterInfo(layout.routerDir)?.reason ?? '', /leads outside.*symbolic link|not a regular file/);
});

test('shard paths come from the layout, never from the manifest', () => {
  const layout = workspaceLayout(ws.root);
  const file = join(layout.dataDir, 'manifest.json');
  const m = JSON.parse(readFileSync(file, 'utf8'));
  m.domains[0].trainPath = '/dev/zero';
  m.domains[0].valPath = '../../../../etc/passwd';
  m.domains.push({ domain: '../../escape', trainPath: '/dev/zero' });
  writeFileSync(file, JSON.stringify(m));
  const read = readManifest(layout)!;
  assert.ok(read.domains.every((d) => d.trainPath.startsWith(layout.dataDir) && d.valPath.startsWith(layout.dataDir)));
  assert.ok(!read.domains.some((d) => d.domain.includes('..')));
});

test('a base model in the workspace whose config.json claims a billion layers is refused before anything is built', () => {
  const base = join(ws.root, 'models', 'evil');
  mkdirSync(base, { recursive: true });
  for (const f of ['model.safetensors', 'tokenizer.json']) copyFileSync(join(root, 'models', 'moa-tiny', f), join(base, f));
  const cfg = JSON.parse(readFileSync(join(root, 'models', 'moa-tiny', 'config.json'), 'utf8'));
  writeFileSync(join(base, 'config.json'), JSON.stringify({ ...cfg, num_hidden_layers: 1e9 }));
  const config = JSON.parse(readFileSync(join(ws.root, '.moa', 'moa.json'), 'utf8'));
  writeFileSync(join(ws.root, '.moa', 'moa.json'), JSON.stringify({ ...config, baseModel: 'models/evil' }));
  const t0 = Date.now();
  const r = moa(ws.root, ['train', '--steps', '2', '--stages', 'experts'], { timeout: 120_000 });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /config\.json: num_hidden_layers 1000000000 is outside the supported range/);
  assert.ok(Date.now() - t0 < 60_000, `refused in ${Date.now() - t0} ms`);
  writeFileSync(join(ws.root, '.moa', 'moa.json'), JSON.stringify(config));
});

test('an adapter bigger than any adapter, a NaN adapter and a hostile alpha are refused with the file named', () => {
  const layout = workspaceLayout(ws.root);
  const src = join(layout.expertsDir, 'python');
  const bad = (name: string, change: (dir: string) => void) => {
    const dir = join(ws.root, 'imports', name);
    mkdirSync(dir, { recursive: true });
    for (const f of ['adapter_config.json', 'adapter_model.safetensors']) copyFileSync(join(src, f), join(dir, f));
    change(dir);
    return moa(ws.root, ['experts', 'import', dir, name]);
  };
  const nan = bad('nan', (dir) => {
    const f = join(dir, 'adapter_model.safetensors');
    const b = readFileSync(f);
    b.writeFloatLE(NaN, b.length - 4);
    writeFileSync(f, b);
  });
  assert.equal(nan.code, 1);
  assert.match(nan.stderr, /adapter_model\.safetensors: .* holds NaN at index \d+: the adapter's weights are not finite/);
  for (const alpha of [-16, 1e308]) {
    const r = bad(`alpha${alpha > 0 ? 'big' : 'neg'}`, (dir) => {
      const f = join(dir, 'adapter_config.json');
      writeFileSync(f, JSON.stringify({ ...JSON.parse(readFileSync(f, 'utf8')), lora_alpha: alpha }));
    });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /adapter_config\.json: "lora_alpha" .* must be a number above 0/);
  }
  const huge = bad('huge', (dir) => {
    // Sparse: 3 GB on paper, nothing on disk.
    require('node:fs').truncateSync(join(dir, 'adapter_model.safetensors'), 3 * 1024 ** 3);
  });
  assert.equal(huge.code, 1);
  assert.match(huge.stderr, /adapter_model\.safetensors: 3221225472 bytes is larger than the 2147483647-byte limit/);
  assert.doesNotMatch(huge.stderr, /\n\s+at /);
  const other = bad('otherbase', (dir) => {
    const f = join(dir, 'adapter_config.json');
    writeFileSync(f, JSON.stringify({ ...JSON.parse(readFileSync(f, 'utf8')), base_model_name_or_path: 'meta-llama/Llama-3.2-1B' }));
  });
  assert.equal(other.code, 0, other.stderr);
  assert.match(other.stderr, /warning: the adapter was made for base model "meta-llama\/Llama-3.2-1B"/);
});

test('a NaN expert makes a completion fail with the reason, never garbage text', () => {
  const layout = workspaceLayout(ws.root);
  const f = join(layout.expertsDir, 'python', 'adapter_model.safetensors');
  const good = readFileSync(f);
  try {
    // The header is checked at load; poison the loaded values by replacing the file's floats after it.
    const b = Buffer.from(good);
    const headerLen = Number(b.readBigUInt64LE(0));
    for (let at = 8 + headerLen; at + 4 <= b.length; at += 4) b.writeFloatLE(1e30, at);
    writeFileSync(f, b);
    const r = moa(ws.root, ['complete', 'src/mod0.py', '--line', '4', '--col', '1', '--max-tokens', '4', '--json']);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /non-finite logit/);
  } finally {
    writeFileSync(f, good);
  }
});
