import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProgressPrinter } from '../../src/cli/progress';
import type { StepEvent } from '../../src/core/trainer/events';

test('each training stage gets its own progress bar, with an ETA counted from the stage\'s start', () => {
  let text = '';
  const out = { isTTY: false, write: (s: string) => ((text += s), true) } as unknown as NodeJS.WriteStream;
  const p = new ProgressPrinter(out);
  const ev = (stage: string, expert: string, step: number, steps: number, elapsed: number): StepEvent => ({ type: 'step', stage, expert, step, steps, loss: 1, lr: 1e-3, tokens_per_s: 100, elapsed_s: elapsed });
  for (let s = 1; s <= 10; s++) for (const e of ['py', 'md']) p.step(ev('experts', e, s, 10, s * 10));
  // The trainer's elapsed_s runs on across stages: 100 s of stage 1, then 1 s per router step.
  for (let s = 1; s <= 10; s++) p.step(ev('router', 'router', s, 10, 100 + s));
  const lines = text.trim().split('\n');
  const router = lines.filter((l) => l.startsWith('[router]'));
  assert.ok(router.length >= 5, `the router stage shows its progress:\n${text}`);
  assert.match(router[0]!, /ETA 9s .* 1\/10 {2}router 1\.000/, 'the ETA of stage 2 does not count stage 1\'s time');
  assert.match(router[router.length - 1]!, /10\/10/);
  assert.ok(!router.some((l) => /py|md/.test(l)), 'stage 1\'s experts are not on the router\'s line');
});
