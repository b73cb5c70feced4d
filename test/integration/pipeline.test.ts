// The walking skeleton end to end, all real: the `moa` CLI bundle, the PyTorch trainer in .venv,
// the ONNX export and onnxruntime-node, on a temporary two-domain workspace.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import OpenAI from 'openai';
import { existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors } from '../../src/core/adapters/safetensors';
import { readBaseModel } from '../../src/core/models/base';
import { loadExpertWeights, type ExpertWeights } from '../../src/core/adapters/store';
import { readRouterInfo } from '../../src/core/adapters/router';
import { loadConfig } from '../../src/core/config/load';
import { evaluate } from '../../src/core/eval/evaluate';
import { productLayout, workspaceLayout } from '../../src/core/paths';
import { Cancelled } from '../../src/core/util/errors';
import { eventContractProblems } from '../../src/core/trainer/eventSchema';
import { repoRoot, tempWorkspace } from '../helpers/tmp';

const root = repoRoot();
const cli = join(root, 'dist', 'cli.js');
let ws: { root: string; cleanup: () => void };

function pythonFile(i: number): string {
  return `import os\nimport sys\n\n\ndef load_${i}(path, limit=${i + 3}):\n    """Read the first lines of a file."""\n    with open(path) as handle:\n        lines = handle.readlines()\n    return [line.strip() for line in lines[:limit]]\n\n\nclass Store${i}:\n    def __init__(self, name):\n        self.name = name\n        self.items = {}\n\n    def put(self, key, value):\n        self.items[key] = value\n        return len(self.items)\n\n    def get(self, key, default=None):\n        return self.items.get(key, default)\n`;
}

function markdownFile(i: number): string {
  return `# Guide ${i}\n\nThis guide explains how to set up the project on a new machine.\n\n## Install\n\nRun the installer and follow the prompts. The default options work for most people.\n\n## Usage\n\n- Open the dashboard from the menu.\n- Pick a workspace and press **Start**.\n- Read the [reference](https://example.invalid/ref-${i}) for every option.\n\n> Note: the first run downloads nothing and takes a minute.\n`;
}

function moa(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [cli, ...args, '--workspace', ws.root], { cwd: ws.root, encoding: 'utf8', input, timeout: 600_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(() => {
  const files: Record<string, string> = { '.gitignore': 'build/\n', 'build/skip.py': pythonFile(99) };
  for (let i = 0; i < 12; i++) files[`src/mod${i}.py`] = pythonFile(i);
  for (let i = 0; i < 12; i++) files[`docs/guide${i}.md`] = markdownFile(i);
  ws = tempWorkspace(files);
});

after(() => ws.cleanup());

/**
 * Runs a test that changes the shared workspace's experts or their state, then puts back what the
 * later tests read (state.json, moa.json, the set of experts), pass or fail: one failing test then
 * fails alone instead of leaving a detached expert or a pinned route to the next.
 */
async function restoring(fn: () => void | Promise<void>): Promise<void> {
  const files = ['state.json', 'moa.json'].map((f) => join(ws.root, '.moa', f));
  const saved = files.map((f) => (existsSync(f) ? readFileSync(f) : undefined));
  const expertsDir = join(ws.root, '.moa', 'experts');
  const experts = new Set(readdirSync(expertsDir));
  try {
    await fn();
  } finally {
    files.forEach((f, i) => (saved[i] ? writeFileSync(f, saved[i]!) : rmSync(f, { force: true })));
    for (const n of readdirSync(expertsDir)) if (!experts.has(n)) rmSync(join(expertsDir, n), { recursive: true, force: true });
  }
}

test('moa init suggests one domain per language and the built-in base model', () => {
  const r = moa(['init', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.domains.map((d: { name: string }) => d.name).sort(), ['markdown', 'python']);
  const config = JSON.parse(readFileSync(join(ws.root, '.moa', 'moa.json'), 'utf8'));
  assert.equal(config.baseModel, 'builtin:moa-tiny');
  const again = moa(['init']);
  assert.equal(again.code, 1, 'never overwrites without --force');
  assert.match(again.stderr, /already exists/);
});

test('moa data tokenizes each domain and reports counts', () => {
  const r = moa(['data', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const m = JSON.parse(r.stdout);
  const py = m.domains.find((d: { domain: string }) => d.domain === 'python');
  assert.equal(py.files, 12, 'build/ is gitignored');
  assert.equal(py.trainTokens + py.valTokens, py.bytes + 2 * py.files);
  const human = moa(['data']);
  assert.match(human.stdout, /python\s+12\s/);
  assert.match(human.stdout, /markdown\s+12\s/);
});

test('moa train writes one PEFT expert per domain', () => {
  const r = moa(['train', '--steps', '6', '--router-steps', '4', '--json']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  const steps = events.filter((e) => e.type === 'step');
  assert.deepEqual([...new Set(steps.filter((e) => e.stage === 'experts').map((e) => e.expert))].sort(), ['markdown', 'python']);
  assert.equal(Math.max(...steps.filter((e) => e.stage === 'experts').map((e) => e.step)), 6);
  assert.equal(steps.filter((e) => e.stage === 'router').length, 4, 'stage 2 ran after stage 1');
  assert.ok(steps.every((e) => Number.isFinite(e.loss) && e.tokens_per_s > 0));
  assert.equal(events[events.length - 1].type, 'done');

  const base = readBaseModel('builtin:moa-tiny', join(root, 'models', 'moa-tiny'));
  const headDim = base.hiddenSize / base.numHeads;
  for (const domain of ['python', 'markdown']) {
    const dir = join(ws.root, '.moa', 'experts', domain);
    const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    assert.equal(cfg.peft_type, 'LORA');
    assert.deepEqual([...cfg.target_modules].sort(), ['k_proj', 'o_proj', 'q_proj', 'v_proj']);
    const st = readSafetensors(join(dir, 'adapter_model.safetensors'));
    assert.equal(st.tensors.size, base.numLayers * 4 * 2);
    for (let l = 0; l < base.numLayers; l++) {
      const p = `base_model.model.model.layers.${l}.self_attn`;
      assert.deepEqual(st.tensors.get(`${p}.q_proj.lora_A.weight`)?.shape, [cfg.r, base.hiddenSize]);
      assert.deepEqual(st.tensors.get(`${p}.q_proj.lora_B.weight`)?.shape, [base.numHeads * headDim, cfg.r]);
      assert.deepEqual(st.tensors.get(`${p}.k_proj.lora_B.weight`)?.shape, [base.numKvHeads * headDim, cfg.r]);
      assert.deepEqual(st.tensors.get(`${p}.o_proj.lora_A.weight`)?.shape, [cfg.r, base.numHeads * headDim]);
    }
    const meta = JSON.parse(readFileSync(join(dir, 'expert.json'), 'utf8'));
    assert.equal(meta.domain, domain);
    assert.equal(meta.steps, 6);
  }
  const router = readRouterInfo(join(ws.root, '.moa', 'router'));
  assert.equal(router?.status, 'ok', router?.reason);
  assert.deepEqual([...router!.experts].sort(), ['markdown', 'python']);
  assert.ok(Object.values(router!.accuracy).some((a) => typeof a === 'number'), 'router accuracy per domain is reported');
  for (const row of Object.values(router!.confusion)) {
    if (row) assert.ok(Math.abs(Object.values(row).reduce((a, b) => a + b, 0) - 1) < 1e-9, 'a confusion row sums to one');
  }
  const runs = readdirSync(join(ws.root, '.moa', 'runs')).filter((n) => /^\d{8}-/.test(n));
  const run = JSON.parse(readFileSync(join(ws.root, '.moa', 'runs', runs[runs.length - 1]!, 'run.json'), 'utf8'));
  assert.equal(run.status, 'done');
  const persisted = readFileSync(join(ws.root, '.moa', 'runs', runs[runs.length - 1]!, 'events.jsonl'), 'utf8').trim().split('\n');
  assert.equal(persisted.length, events.length, 'every event is persisted');
});

test('moa complete routes to the file\'s expert and generates text with onnxruntime-node', () => {
  const file = join(ws.root, 'src', 'mod3.py');
  const r = moa(['complete', file, '--line', '14', '--col', '1', '--max-tokens', '24', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const c = JSON.parse(r.stdout);
  assert.equal(c.route.domain, 'python');
  assert.deepEqual(c.route.experts, [{ name: 'python', weight: 1 }]);
  assert.ok(c.tokens > 0, 'the model generated tokens');
  assert.ok(c.text.length > 0, 'non-empty completion');
  // The ids, for comparing with another runtime id for id; the byte tokenizer's text is its bytes.
  assert.equal(c.tokenIds.length, c.tokens);
  assert.ok(c.promptTokenIds.length > 0 && c.promptTokenIds.length <= 512);
  assert.equal(Buffer.from(c.tokenIds.filter((t: number) => t < 256)).toString('utf8').startsWith(c.text.slice(0, 4)), true);
  // Greedy by default, so prompt lookup is on; its counts are reported and consistent.
  assert.ok(c.draft.accepted <= c.draft.proposed && c.draft.passes <= c.tokens, JSON.stringify(c.draft));
  const onnxDirs = readdirSync(join(ws.root, '.moa', 'cache', 'onnx'));
  assert.equal(onnxDirs.length, 1);
  const onnx = join(ws.root, '.moa', 'cache', 'onnx', onnxDirs[0]!, 'model.onnx');
  const mtime = statSync(onnx).mtimeMs;
  const again = moa(['complete', file, '--line', '14', '--col', '1', '--max-tokens', '24', '--json']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(JSON.parse(again.stdout).text, c.text, 'greedy decoding is deterministic');
  assert.equal(statSync(onnx).mtimeMs, mtime, 'the export is cached, not redone');
  const md = moa(['complete', join(ws.root, 'docs', 'guide1.md'), '--line', '5', '--col', '1', '--json']);
  assert.equal(JSON.parse(md.stdout).route.domain, 'markdown');
});

test('moa eval scores base, every expert on every domain, and MoA routing on held-out data', () => {
  const r = moa(['eval', '--json', '--windows', '4']);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.deepEqual([...report.domains].sort(), ['markdown', 'python']);
  for (const d of report.domains) {
    assert.ok(Number.isFinite(report.base[d]) && report.base[d] > 0);
    for (const e of report.experts) assert.ok(Number.isFinite(report.matrix[d][e]), `${d} × ${e}`);
    assert.equal(report.label[d], report.matrix[d][d], 'label routing is the domain\'s own expert');
    // Training on the domain lowers its held-out loss below the base model's.
    assert.ok(report.matrix[d][d] < report.base[d], `${d}: expert ${report.matrix[d][d]} < base ${report.base[d]}`);
  }
  assert.ok(report.learned && Object.keys(report.learned).length === 2, 'the learned router is scored on every domain');
  assert.equal(report.learnedSource, 'onnx', 'through the learned-routing graph, on the same windows as the other columns');
  for (const d of report.domains) assert.ok(Number.isFinite(report.learned[d]), `learned ${d}`);
  assert.ok(existsSync(join(ws.root, '.moa', 'eval.json')));
  // Every row says how many held-out windows it rests on, and each mean its standard error.
  for (const d of report.domains) {
    assert.ok(report.windowsPerDomain[d] >= 1 && report.windowsPerDomain[d] <= 4, `${d}: ${report.windowsPerDomain[d]} windows`);
    assert.ok(report.windowsPerDomain[d] < 2 || report.stderr.base[d] > 0, `${d}: standard error`);
  }
  // Routing at the cursor, measured: Python blocks inside Markdown, scored after the cursor.
  const py = report.embedded.rows.find((r: { domain: string }) => r.domain === 'python');
  assert.equal(report.embedded.prose, 'markdown');
  assert.ok(py.samples >= 1);
  for (const k of ['file', 'auto', 'learned-prompt', 'learned-block']) assert.ok(Number.isFinite(py.loss[k]) && py.loss[k] > 0, `embedded ${k}`);
  assert.equal(py.servedByBlockExpert.auto, 1, 'auto serves a ```python block with the python expert');
  assert.equal(py.servedByBlockExpert.file, 0);
  assert.ok(py.loss.auto < py.loss.file, `the block's expert beats the file's on the block: ${py.loss.auto} < ${py.loss.file}`);
  const table = moa(['eval', '--windows', '2']).stdout;
  assert.match(table, /fenced blocks in markdown text/);
  assert.match(table, /domain\s+n\s+base\s+markdown\s+python\s+MoA label/);
  assert.match(table, /^python\s+2\s/m);
  assert.match(table, /±\d\.\d{3}/);
  assert.match(table, /^mean /m);
});

test('an evaluation cancelled mid-way stops between scorings and keeps the last report', async () => {
  const layout = workspaceLayout(ws.root);
  const evalFile = join(ws.root, '.moa', 'eval.json');
  const kept = readFileSync(evalFile, 'utf8');
  const abort = new AbortController();
  const python = join(root, '.venv', 'bin', 'python');
  const run = evaluate(layout, productLayout(root), loadConfig(layout.configFile).config, python, { windows: 4, signal: abort.signal });
  abort.abort();
  await assert.rejects(run, (e: unknown) => e instanceof Cancelled && /evaluation cancelled/.test(e.message));
  assert.equal(readFileSync(evalFile, 'utf8'), kept);
});

test('learned routing: the trained router decides on the prompt\'s tokens with no model, and the completion is served by its pick', () => {
  const cfgFile = join(ws.root, '.moa', 'moa.json');
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
  writeFileSync(cfgFile, JSON.stringify({ ...cfg, routing: { mode: 'learned' } }));
  try {
    const r = moa(['route', join(ws.root, 'src', 'mod3.py'), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const route = JSON.parse(r.stdout);
    assert.equal(route.mode, 'learned');
    assert.equal(route.experts.length, 1, 'one expert, the table\'s pick');
    assert.ok(['markdown', 'python'].includes(route.experts[0].name));
    assert.match(route.reason, new RegExp(`^learned router \\(token n-grams of \\d+ tokens\\): ${route.experts[0].name}$`));
    const at = ['--line', '14', '--col', '1'];
    const routed = JSON.parse(moa(['route', join(ws.root, 'src', 'mod3.py'), ...at, '--json']).stdout);
    const c = JSON.parse(moa(['complete', join(ws.root, 'src', 'mod3.py'), ...at, '--max-tokens', '12', '--json']).stdout);
    assert.equal(c.route.mode, 'learned');
    assert.deepEqual(c.route.experts, routed.experts, 'moa route says what the completion used');
    assert.ok(c.tokens > 0 && c.text.length > 0);
    assert.equal(readdirSync(join(ws.root, '.moa', 'cache', 'onnx')).length, 1, 'one graph serves every routing mode');
  } finally {
    writeFileSync(cfgFile, JSON.stringify(cfg));
  }
  // Routing at the cursor: inside a fenced block the route is the block's (auto: by its tag; learned: the router on the block).
  writeFileSync(join(ws.root, 'docs', 'fenced.md'), `${markdownFile(40)}\n\`\`\`python\n${pythonFile(40)}\`\`\`\n\nMore prose after the block.\n`);
  const fenced = join(ws.root, 'docs', 'fenced.md');
  const blockLine = markdownFile(40).split('\n').length + 3;
  try {
    writeFileSync(cfgFile, JSON.stringify({ ...cfg, routing: { mode: 'auto' } }));
    const inBlock = JSON.parse(moa(['route', fenced, '--line', String(blockLine), '--json']).stdout);
    assert.deepEqual(inBlock.experts, [{ name: 'python', weight: 1 }]);
    assert.match(inBlock.reason, /inside a ```python block \(from line \d+\): domain python → expert python/);
    const prose = JSON.parse(moa(['route', fenced, '--line', '3', '--json']).stdout);
    assert.deepEqual(prose.experts, [{ name: 'markdown', weight: 1 }]);
    writeFileSync(cfgFile, JSON.stringify({ ...cfg, routing: { mode: 'learned' } }));
    const learned = moa(['route', fenced, '--line', String(blockLine + 6), '--col', '5']);
    assert.equal(learned.code, 0, learned.stderr);
    assert.match(learned.stdout, /experts at line \d+, column 5: /);
    assert.match(learned.stdout, /inside a ```python block \(from line \d+\): the learned router decided: learned router/);
    const outside = moa(['route', fenced, '--line', '99']);
    assert.equal(outside.code, 1);
    assert.match(outside.stderr, /fenced\.md: line 99 is outside the file/);
  } finally {
    writeFileSync(cfgFile, JSON.stringify(cfg));
    rmSync(fenced);
  }
  // With label routing, a file in no domain goes to the learned router, and the route says so.
  writeFileSync(join(ws.root, 'notes.txt'), 'def helper(x):\n    return x\n');
  const loose = moa(['route', join(ws.root, 'notes.txt'), '--json']);
  assert.equal(loose.code, 0, loose.stderr);
  const lr = JSON.parse(loose.stdout);
  assert.equal(lr.mode, 'label', 'the mode asked for, not "learned"');
  assert.match(lr.reason, /notes\.txt is in no domain: the learned router decided: learned router/);
  rmSync(join(ws.root, 'notes.txt'));
});

test('moa eval --completions completes held-out lines under every way of serving and scores them', () => {
  const r = moa(['eval', '--completions', '--positions', '2', '--windows', '1', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const c = JSON.parse(r.stdout).completions;
  // No mixed baseline was trained here (method.test.ts has one): no column for it.
  assert.deepEqual(c.columns, ['base', 'label', 'label-prefix-only', 'learned', 'auto']);
  assert.deepEqual(Object.keys(c.rows).sort(), ['markdown', 'python']);
  for (const [d, row] of Object.entries(c.rows) as [string, Record<string, { n: number; exact: number; editSimilarity: number; p50Ms: number; targetChars: number }>][]) {
    for (const col of c.columns) {
      const s = row[col]!;
      assert.equal(s.n, 2, `${d} ${col}: two positions`);
      assert.ok(s.exact >= 0 && s.exact <= 1 && s.editSimilarity >= 0 && s.editSimilarity <= 1, `${d} ${col}`);
      assert.ok(s.p50Ms > 0 && s.targetChars > 0);
    }
    // Outside embedded blocks auto routing is label routing: the same expert, the same greedy text.
    assert.deepEqual({ ...row['auto'], p50Ms: 0, p95Ms: 0, firstTokenP50Ms: 0 }, { ...row['label'], p50Ms: 0, p95Ms: 0, firstTokenP50Ms: 0 }, `${d}: auto = label on a plain file`);
  }
  assert.match(moa(['eval', '--completions', '--positions', '2', '--windows', '1']).stdout, /completions to the end of the line at 2 held-out positions per domain/);
});

test('moa experts detach/attach/pin change routing; export and import round-trip a PEFT folder', () => restoring(() => {
  const route = () => JSON.parse(moa(['route', join(ws.root, 'src', 'mod3.py'), '--json']).stdout);
  assert.deepEqual(route().experts, [{ name: 'python', weight: 1 }]);
  assert.equal(moa(['experts', 'detach', 'python']).code, 0);
  assert.deepEqual(route().experts, [], 'a detached expert is not routed to');
  assert.match(moa(['experts', 'list']).stdout, /python\s+detached\s+fresh/);
  writeFileSync(join(ws.root, 'src', 'mod0.py'), pythonFile(0) + '\n# changed\n');
  assert.equal(moa(['data']).code, 0);
  const stale = JSON.parse(moa(['experts', 'list', '--json']).stdout);
  assert.equal(stale.find((e: { name: string }) => e.name === 'python').freshness, 'stale', 'changed data makes the expert stale');
  assert.equal(stale.find((e: { name: string }) => e.name === 'markdown').freshness, 'fresh');
  assert.equal(moa(['experts', 'attach', 'python']).code, 0);
  assert.equal(moa(['experts', 'detach', 'nope']).code, 1, 'an unknown expert is an error');
  const out = join(ws.root, 'exported-python');
  assert.equal(moa(['experts', 'export', 'python', out]).code, 0);
  assert.ok(existsSync(join(out, 'adapter_model.safetensors')));
  // For llama.cpp and Ollama (test/integration/gguf.test.ts runs such files in llama.cpp itself).
  const ollama = join(ws.root, 'ollama-python');
  const o = moa(['experts', 'export', 'python', ollama, '--format', 'ollama', '--json']);
  assert.equal(o.code, 0, o.stderr);
  assert.deepEqual(readdirSync(ollama).sort(), ['Modelfile', 'moa-tiny.gguf', 'python.gguf']);
  assert.match(readFileSync(join(ollama, 'Modelfile'), 'utf8'), /^FROM \.\/moa-tiny\.gguf\nADAPTER \.\/python\.gguf\n/m);
  assert.match(JSON.parse(o.stdout).create, /^ollama create moa-python -f /);
  assert.equal(readFileSync(join(ollama, 'python.gguf')).subarray(0, 4).toString(), 'GGUF');
  assert.equal(moa(['experts', 'export', 'python', ollama, '--format', 'gguf']).code, 1, 'an existing file needs --force');
  const imp = moa(['experts', 'import', out, 'python-copy', '--json']);
  assert.equal(imp.code, 0, imp.stderr);
  const listed = JSON.parse(moa(['experts', 'list', '--json']).stdout);
  assert.deepEqual(listed.map((e: { name: string }) => e.name), ['markdown', 'python', 'python-copy']);
  const inspected = JSON.parse(moa(['experts', 'inspect', 'python-copy', '--json']).stdout);
  const pyIndex = inspected.similarity.experts.indexOf('python');
  const copyIndex = inspected.similarity.experts.indexOf('python-copy');
  assert.ok(Math.abs(inspected.similarity.matrix[copyIndex][pyIndex] - 1) < 1e-6, 'the imported copy has the same update as the original');
  assert.ok(inspected.stats.every((st: { norm: number }) => st.norm > 0), 'a trained expert moves every projection');
  // peft's regex form of target_modules: imported as the list it selects, which the trainer reads too.
  const adapterCfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
  writeFileSync(join(out, 'adapter_config.json'), JSON.stringify({ ...adapterCfg, target_modules: `.*\\.(${adapterCfg.target_modules.join('|')})` }));
  assert.equal(moa(['experts', 'import', out, 'python-regex']).code, 0);
  const regexDir = join(ws.root, '.moa', 'experts', 'python-regex');
  const trainerReads = spawnSync(join(root, '.venv', 'bin', 'python'), ['-c', 'import sys; from pathlib import Path; from moa_trainer.experts_io import read_peft_spec; print(sorted(read_peft_spec(Path(sys.argv[1]), "test").target_modules))', regexDir],
    { encoding: 'utf8', env: { ...process.env, PYTHONPATH: join(root, 'trainer') } });
  assert.equal(trainerReads.status, 0, trainerReads.stderr);
  assert.equal(trainerReads.stdout.trim(), JSON.stringify([...adapterCfg.target_modules].sort()).replace(/"/g, "'").replace(/,/g, ', '));
  rmSync(regexDir, { recursive: true });
  // Pinning switches to pinned routing (as the editor's Pin does): the pinned expert serves a Markdown file too.
  const cfgFile = join(ws.root, '.moa', 'moa.json');
  const mode = () => JSON.parse(readFileSync(cfgFile, 'utf8')).routing?.mode;
  assert.match(moa(['experts', 'pin', 'python-copy']).stdout, /python-copy pinned: it serves every file \(routing.mode is "pinned"/);
  assert.equal(mode(), 'pinned');
  const md = JSON.parse(moa(['route', join(ws.root, 'docs', 'guide1.md'), '--json']).stdout);
  assert.deepEqual(md.experts, [{ name: 'python-copy', weight: 1 }]);
  assert.equal(moa(['experts', 'unpin']).code, 0);
  assert.equal(mode(), 'label', 'unpinning goes back to labels');
}));

test('stopping a run (SIGINT) checkpoints, keeps the existing experts byte for byte, and --resume finishes it', () => restoring(async () => {
  const expertFiles = () => ['python', 'markdown'].map((d) => readFileSync(join(ws.root, '.moa', 'experts', d, 'adapter_model.safetensors')));
  const before = expertFiles();
  const child = spawn(process.execPath, [cli, 'train', '--steps', '40', '--json', '--workspace', ws.root], { cwd: ws.root });
  let out = '';
  let stopped = false;
  child.stdout.on('data', (b: Buffer) => {
    out += b.toString();
    if (!stopped && out.includes('"type":"step"')) {
      stopped = true;
      child.kill('SIGINT');
    }
  });
  const code = await new Promise<number | null>((res) => child.on('close', res));
  assert.equal(code, 3, 'exit code 3 = stopped before the end');
  const events = out.trim().split('\n').map((l) => JSON.parse(l));
  const done = events.find((e) => e.type === 'done');
  assert.equal(done?.stopped, true);
  assert.deepEqual(done?.kept_previous, ['experts']);
  assert.ok(events.some((e) => e.type === 'checkpoint'), 'a checkpoint was written at stop');
  assert.ok(!events.some((e) => e.type === 'artifact'), 'a stopped stage publishes nothing');
  assert.deepEqual(expertFiles(), before, 'the experts a stopped run would have replaced are untouched');
  assert.ok(!existsSync(join(ws.root, '.moa', 'runs', 'train.lock')), 'the run lock is released');

  const resumed = moa(['train', '--resume', '--json']);
  assert.equal(resumed.code, 0, resumed.stderr);
  const after = resumed.stdout.trim().split('\n').map((l) => JSON.parse(l));
  const plan = after.find((e) => e.type === 'plan');
  assert.ok(plan.resumed_from >= 1, 'the resumed run starts from the checkpoint');
  const doneAgain = after.at(-1);
  assert.equal(doneAgain.type, 'done');
  assert.equal(doneAgain.stopped, false);
  // It ran to its 40 steps, or until every expert stopped early (no held-out gain), as it chose.
  const lastStep = after.filter((e) => e.type === 'step' && e.stage === 'experts').at(-1).step;
  assert.ok(lastStep === 40 || after.filter((e) => e.type === 'expert_done').length === 2, `experts stage ended at step ${lastStep}`);
  const current = expertFiles();
  assert.notDeepEqual(current, before, 'the finished run wrote its experts');
  assert.equal(moa(['experts', 'rollback', 'python']).code, 0, 'the replaced version is kept for rollback');
  assert.notDeepEqual(expertFiles()[0], current[0]);
  assert.equal(moa(['experts', 'list']).stdout.match(/^python\s+attached/m)?.length, 1, 'the rolled-back expert is whole and listed');
  assert.equal(moa(['experts', 'rollback', 'python']).code, 0, 'a second rollback undoes the first');
  assert.deepEqual(expertFiles()[0], current[0]);
}));

test('every event the real trainer wrote in this workspace keeps schemas/trainer-events.schema.json', () => {
  const kinds = new Set<string>();
  const runsDir = join(ws.root, '.moa', 'runs');
  for (const run of readdirSync(runsDir)) {
    const file = join(runsDir, run, 'events.jsonl');
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
      const event = JSON.parse(line);
      assert.deepEqual(eventContractProblems(event), [], `${run}: ${line.slice(0, 200)}`);
      kinds.add(event.type);
    }
  }
  for (const k of ['hello', 'plan', 'step', 'eval', 'checkpoint', 'artifact', 'done']) assert.ok(kinds.has(k), `a ${k} event was written`);
});

test('moa experts merge: a cat merge is exactly the weighted sum of the updates, as our reader serves it', () => restoring(() => {
  const layout = workspaceLayout(ws.root);
  const base = readBaseModel(loadConfig(layout.configFile).config.baseModel, join(root, 'models', 'moa-tiny'));
  const merged = moa(['experts', 'merge', 'both', 'python', 'markdown', '--method', 'cat', '--weights', '0.75,-0.5', '--json']);
  assert.equal(merged.code, 0, merged.stderr);
  const [py, md, both] = ['python', 'markdown', 'both'].map((n) => loadExpertWeights(join(layout.expertsDir, n), n, base));
  assert.equal(both!.r, py!.r + md!.r, 'cat: the ranks add up');
  assert.equal(both!.scaling, 1, 'the merged weights carry each expert\'s scaling');
  // ΔW = scaling · B A for one layer's q_proj, from what the serving side reads.
  const delta = (e: ExpertWeights, layer: number) => {
    const m = e.modules.get('q_proj')!;
    const out = new Float64Array(m.outFeatures * m.inFeatures);
    for (let o = 0; o < m.outFeatures; o++) for (let k = 0; k < e.r; k++) {
      const b = m.B[layer]![o * e.r + k]! * e.scaling;
      for (let i = 0; i < m.inFeatures; i++) out[o * m.inFeatures + i]! += b * m.A[layer]![k * m.inFeatures + i]!;
    }
    return out;
  };
  const mdDelta = delta(md!, 1);
  const want = delta(py!, 1).map((x, i) => 0.75 * x - 0.5 * mdDelta[i]!);
  const got = delta(both!, 1);
  assert.ok(want.some((x) => Math.abs(x) > 1e-3), 'the experts moved q_proj');
  assert.ok(got.every((x, i) => Math.abs(x - want[i]!) < 1e-5), 'merged ΔW = 0.75 ΔW_python − 0.5 ΔW_markdown');
  const bad = moa(['experts', 'merge', 'x', 'python', 'markdown', '--method', 'ties']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /needs --density/);
  assert.equal(moa(['experts', 'merge', 'both', 'python', 'markdown']).code, 1, 'an existing name needs --force');
}));

/** `moa serve` in this workspace; resolves with its URL once it listens. */
function serve(args: string[] = []): Promise<{ url: string; child: ChildProcess; exited: Promise<number | null>; log: () => string }> {
  const child = spawn(process.execPath, [cli, 'serve', '--port', '0', ...args, '--workspace', ws.root], { cwd: ws.root, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d;
      const url = /listening on (\S+)/.exec(out)?.[1];
      if (url) resolve({ url, child, exited, log: () => err });
    });
    void exited.then((code) => reject(new Error(`moa serve exited (${code}): ${err}`)));
  });
}

test('moa serve answers the openai client: models, completions as moa complete gives them, streaming, stop, errors', async () => {
  const probe = pythonFile(3).slice(0, 160);
  writeFileSync(join(ws.root, 'probe.py'), probe);
  const lines = probe.split('\n');
  const direct = JSON.parse(moa(['complete', 'probe.py', '--line', String(lines.length), '--col', String(lines.at(-1)!.length + 1), '--expert', 'python', '--max-tokens', '24', '--json']).stdout);
  rmSync(join(ws.root, 'probe.py'));
  const { url, child, exited, log } = await serve();
  try {
    const client = new OpenAI({ baseURL: url, apiKey: 'not-needed-on-loopback' });
    const ids = (await client.models.list()).data.map((m) => m.id);
    assert.deepEqual(ids.slice(0, 2), ['moa', 'base']);
    assert.ok(ids.includes('python') && ids.includes('markdown'), ids.join(','));
    const asked = { model: 'python', prompt: probe, max_tokens: 24, temperature: 0 };
    const one = await client.completions.create(asked);
    assert.equal(one.choices[0]!.text, direct.text, 'the same greedy text as moa complete --expert python');
    assert.equal(one.usage?.completion_tokens, direct.tokens);
    assert.equal(one.choices[0]!.finish_reason, direct.stopReason === 'max-tokens' ? 'length' : 'stop');
    assert.deepEqual((one as unknown as { moa: { experts: unknown } }).moa.experts, [{ name: 'python', weight: 1 }]);
    let streamed = '';
    let last: string | null = null;
    for await (const chunk of await client.completions.create({ ...asked, stream: true })) {
      streamed += chunk.choices[0]?.text ?? '';
      last = chunk.choices[0]?.finish_reason ?? last;
    }
    assert.equal(streamed, direct.text, 'the streamed pieces add up to the same text');
    assert.equal(last, one.choices[0]!.finish_reason);
    const stopped = await client.completions.create({ ...asked, stop: ['\n', 'zzz'] });
    assert.equal(stopped.choices[0]!.text, direct.text.split('\n')[0], 'cut at the first stop string, excluded');
    const routed = await client.completions.create({ model: 'moa', prompt: probe, max_tokens: 4, temperature: 0, file: 'src/x.py' } as Parameters<typeof client.completions.create>[0] & { file: string });
    assert.deepEqual((routed as unknown as { moa: { experts: unknown } }).moa.experts, [{ name: 'python', weight: 1 }], 'file: the label router picks by path');
    await assert.rejects(client.chat.completions.create({ model: 'moa', messages: [{ role: 'user', content: 'hi' }] }), (e: unknown) => e instanceof OpenAI.APIError && e.status === 400 && /no chat template/.test(e.message));
    await assert.rejects(client.completions.create({ ...asked, model: 'nope' }), (e: unknown) => e instanceof OpenAI.NotFoundError);
    await assert.rejects(client.completions.create({ ...asked, n: 2 }), (e: unknown) => e instanceof OpenAI.BadRequestError && /n and best_of/.test(e.message));
    const big = await fetch(`${url}/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'moa', prompt: 'x'.repeat(2 << 20) }) });
    assert.equal(big.status, 413);
    // One generation runs, 16 wait; one more is turned away. Clients that leave free the queue.
    const leave = new AbortController();
    const post = (body: object, signal?: AbortSignal) => fetch(`${url}/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal });
    const flood = Array.from({ length: 18 }, () => post({ ...asked, max_tokens: 900, seed: 1, temperature: 1 }, leave.signal).then((r) => r.status, () => 'left'));
    assert.equal(await Promise.race(flood), 429);
    leave.abort();
    await Promise.all(flood);
    const t0 = performance.now();
    assert.equal((await client.completions.create(asked)).choices[0]!.text, direct.text);
    assert.ok(performance.now() - t0 < 10_000, 'the requests whose clients left were not run');
    assert.match(log(), /client left/);
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0, 'SIGTERM: finishes, then exits cleanly');
  await assert.rejects(serve(['--host', '0.0.0.0']), /--api-key/, 'another host needs an API key');
  const keyed = await serve(['--host', '0.0.0.0', '--api-key', 'sekrit']);
  try {
    const wrong = new OpenAI({ baseURL: keyed.url.replace('0.0.0.0', '127.0.0.1'), apiKey: 'guess', maxRetries: 0 });
    await assert.rejects(wrong.models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError);
    const right = new OpenAI({ baseURL: keyed.url.replace('0.0.0.0', '127.0.0.1'), apiKey: 'sekrit' });
    assert.ok((await right.models.list()).data.length >= 4);
  } finally {
    keyed.child.kill('SIGTERM');
  }
  assert.equal(await keyed.exited, 0);
});
