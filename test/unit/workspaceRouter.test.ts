import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { validateConfig } from '../../src/core/config/validate';
import { workspaceLayout } from '../../src/core/paths';
import { setAttached } from '../../src/core/adapters/state';
import { writeSafetensorsF32 } from '../../src/core/adapters/safetensors';
import { writeJsonAtomic } from '../../src/core/util/atomic';
import { WorkspaceRouter } from '../../src/core/routing/workspaceRouter';
import { NGRAM_HASH, gramBuckets } from '../../src/core/routing/ngram';
import { learnedRoute } from '../../src/core/routing/learned';
import { tempWorkspace } from '../helpers/tmp';

function writeExpert(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const A = { shape: [1, 4], data: new Float32Array(4) };
  const B = { shape: [4, 1], data: new Float32Array(4) };
  const key = (w: string) => `base_model.model.model.layers.0.self_attn.q_proj.lora_${w}.weight`;
  writeSafetensorsF32(join(dir, 'adapter_model.safetensors'), new Map([[key('A'), A], [key('B'), B]]));
  writeJsonAtomic(join(dir, 'adapter_config.json'), { peft_type: 'LORA', r: 1, lora_alpha: 1, target_modules: ['q_proj'] });
}

/** Routes over an empty workspace with python and sql domains: no model, no Python. */
function routingService(root: string) {
  const layout = workspaceLayout(root);
  const config = validateConfig({ domains: [{ name: 'python', include: ['**/*.py'] }, { name: 'sql', include: ['**/*.sql'] }] }).config!;
  return { layout, service: new WorkspaceRouter(layout, config) };
}

test('routing sees experts appear, break, disappear and detach between requests, though it re-lists only on change', () => {
  const ws = tempWorkspace();
  try {
    const { layout, service } = routingService(ws.root);
    const names = (file: string) => service.route(file).experts.map((e) => e.name);
    assert.deepEqual(names('a.py'), [], 'no experts folder yet');
    writeExpert(join(layout.expertsDir, 'python'));
    assert.deepEqual(names('a.py'), ['python'], 'a new expert is routed to');
    assert.deepEqual(names('a.py'), ['python'], 'and still is when nothing changed');
    assert.deepEqual(names('q.sql'), []);
    writeExpert(join(layout.expertsDir, 'sql'));
    assert.deepEqual(names('q.sql'), ['sql']);
    // A broken config written the atomic way (temp file + rename) makes the expert unusable.
    writeFileSync(join(layout.expertsDir, 'sql', '.tmp'), '{"peft_type": "IA3"}');
    renameSync(join(layout.expertsDir, 'sql', '.tmp'), join(layout.expertsDir, 'sql', 'adapter_config.json'));
    assert.deepEqual(names('q.sql'), [], 'a broken expert is not routed to');
    setAttached(layout, 'python', false);
    assert.deepEqual(names('a.py'), [], 'a detached expert is not routed to');
    setAttached(layout, 'python', true);
    assert.deepEqual(names('a.py'), ['python']);
    rmSync(join(layout.expertsDir, 'python'), { recursive: true });
    assert.deepEqual(names('a.py'), [], 'a removed expert is not routed to');
  } finally {
    ws.cleanup();
  }
});

test('a file in no domain goes to the learned router when one is trained, else to the base model', () => {
  const ws = tempWorkspace();
  try {
    const { layout, service } = routingService(ws.root);
    writeExpert(join(layout.expertsDir, 'python'));
    writeExpert(join(layout.expertsDir, 'sql'));
    const before = service.route('notes.txt');
    assert.equal(before.byRouter, undefined);
    assert.deepEqual(before.experts, [], 'no router yet: the base model');
    mkdirSync(layout.routerDir, { recursive: true });
    // Bucket 3 votes for sql; every other bucket says nothing, and the bias leans to python.
    const weight = new Float32Array(8 * 2);
    weight[3 * 2 + 1] = 100;
    writeSafetensorsF32(join(layout.routerDir, 'router.safetensors'), new Map([
      ['ngram.weight', { shape: [8, 2], data: weight }], ['ngram.bias', { shape: [2], data: Float32Array.of(1, 0) }]]));
    const json = { v: 1, experts: ['python', 'sql'], top_k: 1, accuracy: {}, decision: 'ngram', ngram: { orders: [1, 2, 3, 4], buckets: 8, hash: NGRAM_HASH } };
    writeJsonAtomic(join(layout.routerDir, 'router.json'), { ...json, decision: undefined });
    assert.equal(service.route('notes.txt').byRouter, undefined, 'a router from before the n-gram decision is not used');
    writeJsonAtomic(join(layout.routerDir, 'router.json'), json);
    const after = service.route('notes.txt');
    assert.equal(after.byRouter, true, 'the learned router decides for a file in no domain');
    assert.equal(after.mode, 'label', 'the mode stays what the config says');
    assert.match(after.reason, /in no domain: the learned router/);
    // Decided on tokens, with no model: the table's pick, in the reason too.
    const table = service.learned();
    assert.deepEqual(table.experts, ['python', 'sql']);
    const decided = learnedRoute(after, table, []);
    assert.deepEqual(decided.experts, [{ name: 'python', weight: 1 }], 'no n-grams: the bias decides');
    assert.match(decided.reason, /^notes\.txt is in no domain: the learned router decided: learned router \(token n-grams of 0 tokens\): python$/);
    const sqlIds = Array.from({ length: 4000 }, (_, i) => i).filter((i) => gramBuckets([i], 8)[0] === 3).slice(0, 1);
    assert.deepEqual(learnedRoute(after, table, sqlIds).experts, [{ name: 'sql', weight: 1 }], 'a token in the sql bucket');
    assert.deepEqual(service.route('a.py').experts.map((e) => e.name), ['python'], 'a file in a domain still goes by its label');
    setAttached(layout, 'sql', false);
    assert.equal(service.route('notes.txt').byRouter, undefined, 'a router whose experts are not all attached is not used');
  } finally {
    ws.cleanup();
  }
});
