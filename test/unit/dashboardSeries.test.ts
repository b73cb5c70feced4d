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

/** The view as first written (a map per bucket, points as objects): what the fast one must equal. */
function referenceView(points: Map<string, { x: number; y: number }[]>, maxX: number): { x: number[]; cols: (number | null)[][] } {
  const lists = [...points.values()];
  const xMax = Math.max(0, ...lists.flatMap((l) => l.map((p) => p.x)));
  const bucket = Math.max(1, Math.ceil(xMax / Math.max(1, maxX)));
  const xs = new Set<number>();
  const sums = lists.map((l) => {
    const m = new Map<number, { s: number; n: number }>();
    for (const p of l) {
      const bx = Math.ceil(p.x / bucket) * bucket;
      xs.add(bx);
      const acc = m.get(bx) ?? { s: 0, n: 0 };
      acc.s += p.y;
      acc.n += 1;
      m.set(bx, acc);
    }
    return m;
  });
  const x = [...xs].sort((a, b) => a - b);
  return { x, cols: sums.map((m) => x.map((bx) => (m.has(bx) ? m.get(bx)!.s / m.get(bx)!.n : null))) };
}

test('the drawn view equals the plain bucket means, over random runs with resumed (repeated) steps and gaps', () => {
  let seed = 11;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let run = 0; run < 40; run++) {
    const s = new LossSeries();
    const expected = new Map<string, { x: number; y: number }[]>();
    const experts = ['a', 'b', 'c'].slice(0, 1 + Math.floor(rand() * 3));
    let offset = 0;
    for (const stage of ['experts', 'router'].slice(0, 1 + Math.floor(rand() * 2))) {
      const steps = 1 + Math.floor(rand() * 3000);
      let end = 0;
      for (let i = 1; i <= steps; i++) {
        // A resume repeats some steps; an expert that stopped early leaves a gap.
        const step = rand() < 0.05 ? Math.max(1, i - Math.floor(rand() * 20)) : i;
        for (const e of experts) {
          if (rand() < 0.1) continue;
          const loss = rand() < 0.01 ? Number.NaN : rand() * 4;
          s.addStep({ stage, expert: e, step, loss });
          if (!Number.isFinite(loss)) continue; // not plotted, and no place on the axis
          expected.set(e, [...(expected.get(e) ?? []), { x: offset + step, y: loss }]);
          end = Math.max(end, step);
        }
      }
      offset += end;
    }
    const maxX = 1 + Math.floor(rand() * 1500);
    const v = s.view(maxX);
    const ref = referenceView(new Map([...expected].sort(([a], [b]) => a.localeCompare(b))), maxX);
    assert.deepEqual(v.data[0], ref.x, `run ${run}: x positions`);
    ref.cols.forEach((col, k) => col.forEach((y, i) => {
      const got = v.data[k + 1]![i];
      assert.ok(y === null ? got === null : Math.abs((got as number) - y) < 1e-9, `run ${run}, column ${k}, x ${ref.x[i]}: ${got} vs ${y}`);
    }));
  }
});
