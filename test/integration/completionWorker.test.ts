// Completions on a worker thread (CompletionClient + dist/completionWorker.js), all real: the
// shipped moa-tiny exported by the trainer and run by onnxruntime-node inside the worker. The
// extension serves inline completions this way so that a prefill never holds its event loop.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { validateConfig } from '../../src/core/config/validate';
import { productLayout, workspaceLayout } from '../../src/core/paths';
import { choosePython } from '../../src/core/trainer/python';
import { CompletionClient } from '../../src/core/inference/completionClient';
import { CompletionService, DEFAULT_COMPLETE } from '../../src/core/inference/service';
import { repoRoot, tempWorkspace } from '../helpers/tmp';

const root = repoRoot();
const workerFile = join(root, 'dist', 'completionWorker.js');
const python = choosePython(root).command;
const PREFIX = 'import os\n\n\ndef read_lines(path):\n    with open(path) as f:\n        return ';
const config = validateConfig({ domains: [{ name: 'python', include: ['**/*.py'] }] }).config!;

let ws: { root: string; cleanup: () => void };
let asked = 0;
let client: CompletionClient;

const onnxruntimeHere = () => Object.keys(require.cache).some((k) => k.includes(`${join('node_modules', 'onnxruntime-node')}`));

before(() => {
  ws = tempWorkspace({ 'src/a.py': PREFIX });
  client = new CompletionClient(workerFile, { layout: workspaceLayout(ws.root), product: productLayout(root), config }, async () => {
    asked++;
    return python;
  });
});

after(async () => {
  await client?.dispose();
  ws?.cleanup();
});

test('the worker completes as the in-process service does, asks the host for Python once, and onnxruntime never loads on this thread', async () => {
  const opts = { ...DEFAULT_COMPLETE, maxNewTokens: 24 };
  const viaWorker = await client.complete('src/a.py', PREFIX, opts);
  assert.ok(viaWorker.tokens > 0 && viaWorker.text.length > 0, JSON.stringify(viaWorker));
  assert.equal(asked, 1, 'the one-time export asked the host for the interpreter');
  assert.equal(onnxruntimeHere(), false, 'onnxruntime-node was loaded by the worker only');
  const again = await client.complete('src/a.py', PREFIX, opts);
  assert.equal(again.text, viaWorker.text, 'greedy: the same text');
  assert.equal(asked, 1, 'the export is cached: Python is not asked again');
  // Streaming (moa serve from the editor): the text after each token crosses the thread as it grows.
  const seen: string[] = [];
  const streamed = await client.complete('src/a.py', PREFIX, { ...opts, stopStrings: ['@@never@@'], onText: (t) => seen.push(t) });
  assert.equal(streamed.text, viaWorker.text);
  assert.ok(seen.length >= 2 && seen.at(-1) === streamed.text && seen.every((t, i) => i === 0 || t.startsWith(seen[i - 1]!)), JSON.stringify(seen));
  const service = new CompletionService(workspaceLayout(ws.root), productLayout(root), config, python);
  try {
    const here = await service.complete('src/a.py', PREFIX, opts);
    assert.equal(here.text, viaWorker.text);
    assert.deepEqual(here.route, viaWorker.route);
  } finally {
    await service.dispose();
  }
});

test('inference.weights int8: the completion runs on a MatMulNBits graph in onnxruntime-node', async () => {
  const service = new CompletionService(workspaceLayout(ws.root), productLayout(root), { ...config, inference: { weights: 'int8' } }, python);
  try {
    const c = await service.complete('src/a.py', PREFIX, { ...DEFAULT_COMPLETE, maxNewTokens: 24 });
    assert.ok(c.tokens > 0 && c.text.length > 0, JSON.stringify(c));
    const graphs = readdirSync(workspaceLayout(ws.root).onnxDir).map((d) => join(workspaceLayout(ws.root).onnxDir, d, 'model.json')).filter((f) => existsSync(f));
    assert.ok(graphs.some((f) => JSON.parse(readFileSync(f, 'utf8')).weights === 'int8'), 'an int8 export beside the float one');
  } finally {
    await service.dispose();
  }
});

test('an aborted request stops in the worker between decode steps', async () => {
  const abort = new AbortController();
  // Sampling (no prompt lookup) and no stop rule: without the abort it would run all 900 steps (the model takes 1,024 positions).
  const pending = client.complete('src/a.py', PREFIX, { ...DEFAULT_COMPLETE, maxNewTokens: 900, temperature: 0.8, signal: abort.signal });
  setTimeout(() => abort.abort(), 20);
  const c = await pending;
  assert.equal(c.stopReason, 'cancelled');
  assert.ok(c.tokens < 900, `${c.tokens} tokens`);
  const pre = new AbortController();
  pre.abort();
  const none = await client.complete('src/a.py', PREFIX, { ...DEFAULT_COMPLETE, signal: pre.signal });
  assert.equal(none.stopReason, 'cancelled', 'aborted before it started: nothing generated');
  assert.equal(none.tokens, 0);
});

test('a failure in the worker comes back as an error naming the problem, and the worker keeps serving', async () => {
  const bad = new CompletionClient(workerFile, {
    layout: workspaceLayout(ws.root), product: productLayout(root), config: { ...config, baseModel: 'builtin:no-such-model' },
  }, async () => python);
  try {
    await assert.rejects(bad.complete('src/a.py', PREFIX, DEFAULT_COMPLETE), /no-such-model/);
    await assert.rejects(bad.complete('src/a.py', PREFIX, DEFAULT_COMPLETE), /no-such-model/, 'still answering after a failure');
  } finally {
    await bad.dispose();
  }
  // Disposing lets a request in flight answer (the provider drops its client when experts change,
  // often mid-completion), and the next request starts a new worker.
  const inFlight = client.complete('src/a.py', PREFIX, { ...DEFAULT_COMPLETE, maxNewTokens: 16 });
  const disposing = client.dispose();
  const next = client.complete('src/a.py', PREFIX, { ...DEFAULT_COMPLETE, maxNewTokens: 4 }); // on a new worker
  await disposing;
  assert.ok((await inFlight).tokens > 0, 'the request in flight was answered, not dropped');
  assert.ok((await next).tokens > 0, 'the old worker\'s exit did not fail the new worker\'s request');
  const c = await client.complete('src/a.py', PREFIX, { ...DEFAULT_COMPLETE, maxNewTokens: 4 });
  assert.ok(c.tokens > 0);
});
