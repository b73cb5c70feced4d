import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EventTail } from '../../src/core/trainer/eventTail';
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
