import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EventTail } from '../../src/core/trainer/eventTail';
import type { TrainerEvent } from '../../src/core/trainer/events';
import { ELSEWHERE, runUpdate, viewOf } from '../../src/core/trainer/runView';
import { tempWorkspace } from '../helpers/tmp';

const step = (n: number) => JSON.stringify({ v: 1, type: 'step', stage: 'experts', expert: 'py', step: n, steps: 9, loss: 1 / n, lr: 0.001, tokens_per_s: 10, elapsed_s: n }) + '\n';

test('a growing events file is read a whole event at a time, once each, and again from the start when replaced', () => {
  const ws = tempWorkspace();
  try {
    const file = join(ws.root, 'events.jsonl');
    const tail = new EventTail(file);
    assert.deepEqual(tail.read(), [], 'no file yet: nothing');
    writeFileSync(file, step(1) + step(2));
    assert.deepEqual(tail.read().map((e) => e.type === 'step' && e.step), [1, 2]);
    const three = step(3);
    appendFileSync(file, three.slice(0, 20));
    assert.deepEqual(tail.read(), [], 'half a line waits for its newline');
    appendFileSync(file, three.slice(20) + 'not json\n' + step(4));
    assert.deepEqual(tail.read().map((e) => e.type === 'step' && e.step), [3, 4], 'noise skipped');
    assert.deepEqual(tail.read(), [], 'nothing new: nothing twice');
    writeFileSync(file, step(7));
    assert.deepEqual(tail.read().map((e) => e.type === 'step' && e.step), [7], 'replaced by a shorter file: read from its start');
  } finally {
    ws.cleanup();
  }
});

test('a run view: curves, device, world size and how the run ended, from its events; updates say the same', () => {
  const hello: TrainerEvent = { type: 'hello', python: '3.12', torch: '2.13', device: 'cuda', gpu: 'NVIDIA H200', gpu_memory_gb: 139.4, gpu_count: 2 };
  const plan: TrainerEvent = { type: 'plan', stage: 'experts', experts: ['py'], steps: 9, world_size: 2 };
  const events = [hello, plan, ...[1, 2].map((n) => JSON.parse(step(n)) as TrainerEvent), { type: 'eval', stage: 'experts', expert: 'py', domain: 'py', loss: 0.7 } as TrainerEvent];
  const v = viewOf('r1', events);
  assert.deepEqual([v.status, v.device, v.worldSize, v.steps.map((s) => s.loss), v.evals], ['ended', '2 × NVIDIA H200 (139 GB)', 2, [1, 0.5], [{ stage: 'experts', expert: 'py', step: 0, loss: 0.7 }]]);
  assert.equal(viewOf('r1', [...events, { type: 'done', stopped: true }]).status, 'stopped');
  assert.equal(viewOf('r1', [...events, { type: 'error', message: 'x', hint: null }]).status, 'failed');
  assert.equal(viewOf('r1', events, ELSEWHERE).status, ELSEWHERE, 'a status the caller knows wins');
  assert.equal(viewOf(null, []).status, 'idle');
  assert.deepEqual(runUpdate(plan, 'running'), { type: 'status', status: 'running', worldSize: 2 });
  assert.equal(runUpdate({ ...plan, world_size: undefined }, 'running'), undefined, 'a plan without a world size changes nothing');
  assert.deepEqual(runUpdate(events[2]!, 'running'), { type: 'step', step: v.steps[0] });
  assert.deepEqual(runUpdate({ type: 'done', stopped: false }, ELSEWHERE), { type: 'status', status: 'done' });
});
