import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LossSeries } from '../../webview/dashboard/series';

test('stages follow each other on one axis; held-out points align with their step', () => {
  const s = new LossSeries();
  for (let i = 1; i <= 3; i++) {
    s.addStep({ stage: 'experts', expert: 'py', step: i, loss: 3 - i * 0.5 });
    s.addStep({ stage: 'experts', expert: 'md', step: i, loss: 2 });
  }
  s.addEval({ stage: 'experts', expert: 'py', step: 3, loss: 1.75 });
  s.addStep({ stage: 'router', expert: 'router', step: 1, loss: 4 });
  s.addStep({ stage: 'router', expert: 'router', step: 2, loss: Number.NaN });
  const v = s.view(1000);
  assert.deepEqual(v.names, ['md', 'py', 'py (held-out)', 'router']);
  assert.deepEqual(v.data[0], [1, 2, 3, 4]);
  assert.deepEqual(v.data[2], [2.5, 2, 1.5, null]);
  assert.deepEqual(v.data[3], [null, null, 1.75, null]);
  assert.deepEqual(v.data[4], [null, null, null, 4], 'router step 1 comes after the 3 expert steps');
  assert.equal(v.points, 8, 'a NaN loss is not plotted');
});

test('100,000 points per series: every point is kept, the drawn view is bounded', () => {
  const s = new LossSeries();
  for (let i = 1; i <= 100_000; i++) for (const e of ['a', 'b', 'c']) s.addStep({ stage: 'experts', expert: e, step: i, loss: 1 + (i % 10) });
  const t0 = performance.now();
  const v = s.view(2000);
  const ms = performance.now() - t0;
  assert.equal(s.pointCount, 300_000);
  assert.ok(v.data[0].length <= 2000, `${v.data[0].length} x positions`);
  assert.ok(Math.abs((v.data[1][0] as number) - 5.5) < 1e-9, 'a bucket is drawn as the mean of its losses');
  console.log(`view of 300k points in ${ms.toFixed(0)} ms`);
});
