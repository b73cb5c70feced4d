import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { cmdReport } from '../../src/cli/commands/report';
import { workspaceLayout } from '../../src/core/paths';
import { collectReport } from '../../src/core/report/collect';
import { lossCurves } from '../../src/core/report/curves';
import { downsample } from '../../src/core/report/downsample';
import { html, raw } from '../../src/core/report/html';
import { renderReport } from '../../src/core/report/render';
import { MoaError } from '../../src/core/util/errors';
import { tempWorkspace } from '../helpers/tmp';

const HOSTILE = '<img src=x onerror=alert(1)>';
const DOMAINS = ['python', 'markdown', HOSTILE];
const RUN = '20260101-120000-abcd';

/** A workspace as `moa data`, `moa train --stages experts,router,mixed` and `moa eval` leave it, written by hand. */
function syntheticWorkspace(opts: { steps?: number; evalJson?: string | null; withRun?: boolean } = {}) {
  const steps = opts.steps ?? 40;
  const ws = tempWorkspace({ '.moa/moa.json': JSON.stringify({ version: 1, baseModel: 'builtin:moa-tiny', domains: [] }) });
  const layout = workspaceLayout(ws.root);
  if (opts.withRun !== false) {
    const dir = join(layout.runsDir, RUN);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'run.json'), JSON.stringify({ v: 1, id: RUN, status: 'done', created: '2026-01-01T12:00:00Z' }));
    const ev: object[] = [{ type: 'hello', python: '3.11', torch: '2.13.0+cpu', device: 'cpu', gpu: null, gpu_memory_gb: null }];
    ev.push({ type: 'plan', stage: 'experts', experts: DOMAINS, steps });
    for (let s = 1; s <= steps; s++) {
      DOMAINS.forEach((d, i) => ev.push({ type: 'step', stage: 'experts', expert: d, step: s, steps, loss: 3 - i * 0.3 - s / steps, lr: 1e-3, tokens_per_s: 1000, elapsed_s: s }));
      if (s % 10 === 0) DOMAINS.forEach((d, i) => ev.push({ type: 'eval', stage: 'experts', expert: d, domain: d, loss: 2.9 - i * 0.3 - s / steps, step: s }));
    }
    ev.push({ type: 'step', stage: 'experts', expert: 'python', step: steps, steps, loss: null, lr: 1e-3, tokens_per_s: 1, elapsed_s: 1 });
    ev.push({ type: 'plan', stage: 'router', experts: DOMAINS, steps: 10 });
    for (let s = 1; s <= 10; s++) ev.push({ type: 'step', stage: 'router', expert: 'router', step: s, steps: 10, loss: 2 - s / 20, lr: 1e-3, tokens_per_s: 1000, elapsed_s: s });
    DOMAINS.forEach((d, i) => ev.push({ type: 'eval', stage: 'router', expert: 'router', domain: d, loss: 1.5 + i / 10, step: 10, router_accuracy: 0.5 + i / 10, routed_to: Object.fromEntries(DOMAINS.map((x) => [x, x === d ? 0.5 + i / 10 : (0.5 - i / 10) / 2])) }));
    ev.push({ type: 'plan', stage: 'mixed', experts: ['mixed'], steps: 10 });
    for (let s = 1; s <= 10; s++) ev.push({ type: 'step', stage: 'mixed', expert: 'mixed', step: s, steps: 10, loss: 2.5 - s / 20, lr: 1e-3, tokens_per_s: 1000, elapsed_s: s });
    DOMAINS.forEach((d) => ev.push({ type: 'eval', stage: 'mixed', expert: 'mixed', domain: d, loss: 1.9, step: 10 }));
    ev.push({ type: 'done', stopped: false, elapsed_s: 12.5 });
    writeFileSync(join(dir, 'events.jsonl'), ev.map((e) => JSON.stringify({ v: 1, ...e })).join('\n') + '\n');
  }
  const per = (f: (d: string, i: number) => number) => Object.fromEntries(DOMAINS.map((d, i) => [d, f(d, i)]));
  const report = {
    v: 1, created: '2026-01-01T12:10:00Z', windows: 16, seqLen: 128, domains: DOMAINS, experts: DOMAINS,
    base: per(() => 2.5), matrix: Object.fromEntries(DOMAINS.map((d) => [d, per((x) => (x === d ? 1.5 : 2.2))])),
    mixed: per(() => 1.9), label: per(() => 1.5), learned: per(() => 1.6), routerAccuracy: per((_, i) => 0.5 + i / 10),
    completions: {
      seed: 0, positionsPerDomain: 4, maxNewTokens: 48, columns: ['base', 'label', 'auto'],
      rows: Object.fromEntries(DOMAINS.map((d, i) => [d, { base: scores(0.1), label: scores(0.2 + i / 10), auto: scores(0.25) }])),
    },
    embedded: {
      prose: 'markdown', shape: { prose: 64, blockBeforeCursor: 32, continuation: 32 },
      rows: [{ domain: 'python', samples: 4, loss: { 'file': 2.1, 'auto': 1.7, 'learned-prompt': 2.0, 'learned-block': 1.8 }, servedByBlockExpert: { 'file': 0, 'auto': 1, 'learned-prompt': 0.25, 'learned-block': 0.75 } }],
    },
    editorContext: { contextTokens: 384, meanContext: per(() => 300), label: per(() => 1.25), learned: per((_, i) => 1.25 + i / 100), accuracy: per(() => 0.875) },
  };
  if (opts.evalJson !== null) writeFileSync(join(layout.moaDir, 'eval.json'), opts.evalJson ?? JSON.stringify(report));
  mkdirSync(layout.dataDir, { recursive: true });
  writeFileSync(join(layout.dataDir, 'manifest.json'), JSON.stringify({
    v: 1, tokenizer: 'moa-bytes-v1', created: '2026-01-01T11:59:00Z', skipped: { excluded: 1 }, unassigned: 2,
    domains: DOMAINS.map((d, i) => ({ domain: d, files: 10 + i, bytes: 1000 * (i + 1), trainFiles: 9, valFiles: 1 + i, trainTokens: 900, valTokens: 100, fingerprint: 'x', trainPath: 'a', valPath: 'b' })),
  }));
  return { ws, layout };
}

function scores(editSimilarity: number) {
  return { n: 4, exact: 0.25, editSimilarity, acceptedChars: 3.5, targetChars: 20, p50Ms: 40, p95Ms: 90, firstTokenP50Ms: 12, servedByOwnExpert: 0.5 };
}

/** Markup with every quoted attribute value emptied, so text inside values cannot look like markup. */
const tagsOnly = (page: string) => page.replace(/"[^"]*"/g, '""');

test('the report draws every expert of every stage, the eval table, heatmap, router and datasets', () => {
  const { ws, layout } = syntheticWorkspace();
  try {
    const page = renderReport(collectReport(layout));
    for (const d of ['python', 'markdown']) {
      assert.match(page, new RegExp(`<polyline data-series="${d} \\(train\\)" data-kind="train"`), `${d}'s training curve`);
      assert.match(page, new RegExp(`data-series="${d} \\(held-out\\)" data-kind="held-out"`), `${d}'s held-out curve`);
    }
    assert.ok(page.includes('data-series="&lt;img src=x onerror=alert(1)&gt; (train)"'), 'the hostile expert\'s curve is there, escaped');
    for (const stage of ['experts', 'router', 'mixed']) assert.ok(page.includes(`data-stage="${stage}"`), `stage ${stage}`);
    assert.ok(page.includes('data-series="router (train)"') && page.includes('data-series="mixed (train)"'));
    const evalBody = /<table class="eval">[\s\S]*?<tbody>([\s\S]*?)<\/tbody>/.exec(page)?.[1] ?? '';
    assert.equal((evalBody.match(/<tr /g) ?? []).length, DOMAINS.length, 'one eval row per domain');
    assert.match(page, /<th>mixed<\/th>/);
    assert.match(page, /<th>MoA learned<\/th>/);
    // MoA's columns come first; the per-expert figures are the heatmap's, so the table fits the page.
    const head = /<table class="eval"><thead><tr>([\s\S]*?)<\/tr><\/thead>/.exec(page)?.[1] ?? '';
    assert.deepEqual([...head.matchAll(/<th[^>]*>([^<]*)<\/th>/g)].map((m) => m[1]), ['domain', 'n', 'MoA label', 'MoA learned', 'mixed', 'base', 'router acc']);
    // The stage-1 chart lets the reader show one expert alone (CSS only: no script).
    assert.match(page, /<div class="isolate" role="radiogroup"/);
    assert.match(page, /section\.stage:has\(#iso-experts-0:checked\) g\.series:not\(\[data-group="0"\]\)\{display:none\}/);
    assert.match(page, /aria-label="domain by expert held-out loss"/);
    assert.match(page, /aria-label="router accuracy per domain"/);
    assert.match(page, /aria-label="router confusion matrix"/);
    assert.match(page, /<table class="dataset">/);
    // What users see: the completion table, and routing at the cursor.
    const completions = /<h3>Completions<\/h3>[\s\S]*?<\/table>/.exec(page)?.[0] ?? '';
    assert.match(completions, /<th>label \(own expert\)<\/th>/);
    assert.match(completions, /<td class="best">25% · 0\.25 · 3\.5\/20<span class="se sub">own 50%<\/span><span class="se sub">12 · 40\/90 ms<\/span><\/td>/, 'python: auto has the best edit similarity');
    assert.match(page, /<h3>Routing at the cursor<\/h3>[\s\S]*<td class="best">1\.700<span class="se"> 100%<\/span>/);
    assert.match(page, /<h3>Routing with the editor’s context<\/h3>[\s\S]*<td class="n">300<\/td><td>1\.250<\/td><td>1\.250<\/td><td>88%<\/td>/);
    assert.ok(!page.includes('not available'), 'nothing is missing');
  } finally {
    ws.cleanup();
  }
});

test('a hostile domain name is escaped everywhere; no script, no remote resource', () => {
  const { ws, layout } = syntheticWorkspace();
  try {
    const page = renderReport(collectReport(layout));
    assert.ok(page.includes('&lt;img src=x onerror=alert(1)&gt;'));
    assert.ok(!page.includes(HOSTILE), 'the raw name never reaches the markup');
    assert.ok(!/<img/i.test(page));
    assert.ok(!/<script/i.test(page));
    assert.ok(!/https?:\/\//i.test(page), 'no http:// or https:// anywhere');
    assert.ok(!/<[^>]*\s(src|href|xlink:href)=/i.test(tagsOnly(page)), 'no element loads anything');
    assert.ok(!/<(link|iframe|object|embed|image)\b/i.test(page));
    assert.ok(!/url\(|@import/i.test(page), 'the CSS loads nothing either');
    assert.match(page, /Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:"/);
    assert.ok(!/<[^>]*\son[a-z]+=/i.test(tagsOnly(page)), 'no event-handler attributes');
  } finally {
    ws.cleanup();
  }
});

test('a long series is downsampled for drawing, its first and last points kept', () => {
  const { ws, layout } = syntheticWorkspace({ steps: 5000 });
  try {
    const page = renderReport(collectReport(layout));
    const m = /<polyline data-series="python \(train\)" data-kind="train" data-points="(\d+)" points="([^"]*)"/.exec(page);
    assert.ok(m, 'python is drawn');
    assert.equal(Number(m[1]), 5000, 'every point is counted');
    assert.ok(m[2]!.split(' ').length <= 400, `${m[2]!.split(' ').length} points drawn`);
    assert.ok(page.length < 400_000, `${page.length} bytes`);
  } finally {
    ws.cleanup();
  }
  const pts = Array.from({ length: 1001 }, (_, i) => ({ x: i, y: i % 2 }));
  const d = downsample(pts, 100);
  assert.equal(d.length, 100);
  assert.deepEqual(d[0], pts[0]);
  assert.deepEqual(d[99], pts[1000]);
  assert.ok(d.slice(1, -1).every((p) => Math.abs(p.y - 0.5) < 0.2), 'a bucket is drawn as its mean');
});

test('missing pieces are clear notes naming the command to run, not failures', () => {
  const { ws, layout } = syntheticWorkspace({ withRun: false, evalJson: null });
  try {
    const page = renderReport(collectReport(layout));
    assert.match(page, /loss curves are not available: run <code>moa train<\/code>/);
    assert.match(page, /the eval table is not available: run <code>moa eval<\/code>/);
    assert.match(page, /router accuracy is not available/);
    assert.ok(!page.includes('<polyline'));
  } finally {
    ws.cleanup();
  }
});

test('a corrupt eval.json is reported with its file name; an unknown run is refused', () => {
  const { ws, layout } = syntheticWorkspace({ evalJson: JSON.stringify({ v: 1, domains: 'python' }) });
  try {
    const input = collectReport(layout);
    assert.equal(input.eval, undefined);
    assert.equal(input.problems.length, 1);
    assert.ok(input.problems[0]!.startsWith(join(layout.runsDir, RUN, 'eval.json')) || input.problems[0]!.startsWith(join(layout.moaDir, 'eval.json')), input.problems[0]);
    const page = renderReport(input);
    assert.match(page, /<ul class="problems">/);
    assert.match(page, /the eval table is not available/);
    assert.throws(() => collectReport(layout, { runId: '20990101-000000-ffff' }), (e) => e instanceof MoaError && /20990101-000000-ffff: no such run/.test(e.message));
  } finally {
    ws.cleanup();
  }
  const empty = tempWorkspace();
  try {
    assert.throws(() => collectReport(workspaceLayout(empty.root)), /not a MoA workspace/);
  } finally {
    empty.cleanup();
  }
});

test('loss curves: stages in run order, NaN losses dropped, an eval without a step sits at the stage\'s last step', () => {
  const stages = lossCurves([
    { type: 'step', stage: 'experts', expert: 'a', step: 1, steps: 2, loss: 2, lr: 0, tokens_per_s: 0, elapsed_s: 0 },
    { type: 'step', stage: 'experts', expert: 'a', step: 2, steps: 2, loss: Number.NaN, lr: 0, tokens_per_s: 0, elapsed_s: 0 },
    { type: 'eval', stage: 'experts', expert: 'a', domain: 'a', loss: 1.5 },
    { type: 'step', stage: 'router', expert: 'router', step: 1, steps: 1, loss: 1, lr: 0, tokens_per_s: 0, elapsed_s: 0 },
  ]);
  assert.deepEqual(stages.map((s) => s.stage), ['experts', 'router']);
  assert.deepEqual(stages[0]!.curves[0]!.points, [{ x: 1, y: 2 }]);
  assert.deepEqual(stages[0]!.curves[1], { expert: 'a', domain: 'a', heldOut: true, points: [{ x: 2, y: 1.5 }] });
  assert.equal(stages[0]!.steps, 2);
});

test('the html template escapes what it interpolates unless it is markup already', () => {
  assert.equal(html`<b title="${'"x"'}">${'<i>&'}</b>${raw('<br>')}${[1, '<', null]}`.text, '<b title="&quot;x&quot;">&lt;i&gt;&amp;</b><br>1&lt;');
});

test('moa report writes .moa/report.html by default, or --out, and prints the path', async () => {
  const { ws, layout } = syntheticWorkspace();
  const write = process.stdout.write;
  let printed = '';
  process.stdout.write = ((chunk: string) => ((printed += chunk), true)) as typeof process.stdout.write;
  try {
    assert.equal(await cmdReport({ workspace: ws.root }), 0);
    assert.match(readFileSync(join(layout.moaDir, 'report.html'), 'utf8'), /^<!DOCTYPE html>/);
    assert.match(printed, /report: .*\.moa\/report\.html \(run 20260101-120000-abcd\)/);
    printed = '';
    const out = join(ws.root, 'elsewhere', 'r.html');
    assert.equal(await cmdReport({ workspace: ws.root, out, json: true, run: RUN }), 0);
    const j = JSON.parse(printed);
    assert.equal(j.path, out);
    assert.deepEqual(j.stages, ['experts', 'router', 'mixed']);
    assert.equal(j.eval && j.router && j.dataset, true);
  } finally {
    process.stdout.write = write;
    ws.cleanup();
  }
});

test('the heatmap\'s columns follow its rows, so the diagonal is the diagonal; each row is coloured on its own range', async () => {
  const { heatmap } = await import('../../src/core/report/charts');
  const { ws, layout } = syntheticWorkspace();
  try {
    const page = renderReport(collectReport(layout));
    const fig = /<svg[^>]*aria-label="domain by expert held-out loss">([\s\S]*?)<\/svg>/.exec(page)?.[1] ?? '';
    const cols = [...fig.matchAll(/<text class="col-label"[^>]*><title>([^<]*)<\/title>/g)].map((m) => m[1]);
    const rows = [...fig.matchAll(/<g class="row" data-row="([^"]*)"/g)].map((m) => m[1]);
    assert.deepEqual(cols.slice(0, rows.length).filter((c) => rows.includes(c)), rows.filter((r) => cols.includes(r)), `columns ${cols} follow rows ${rows}`);
  } finally {
    ws.cleanup();
  }
  // One outlier row (3.5) must not wash out the others: per row, each row's best is the deepest colour.
  const values: Record<string, Record<string, number>> = { a: { x: 1.0, y: 1.1 }, b: { x: 1.2, y: 1.05 }, c: { x: 3.5, y: 3.4 } };
  const svg = heatmap(['a', 'b', 'c'], ['x', 'y'], (r, c) => values[r]![c], { label: 'h', format: (v) => v.toFixed(2), lowIsStrong: true, perRow: true }).text;
  const fills = [...svg.matchAll(/fill="(rgb\([^)]*\))"/g)].map((m) => m[1]);
  assert.equal(fills[0], fills[3], 'row a\'s best and row b\'s best share the deepest shade');
  assert.equal(fills[0], fills[5], 'and so does the outlier row\'s best');
});

test('events files of any size read in bounded memory; unreadable events are named, never skipped in silence', async () => {
  const { readRunLog } = await import('../../src/core/trainer/runs');
  const { ws, layout } = syntheticWorkspace();
  try {
    const file = join(ws.root, 'big.jsonl');
    const line = (i: number) => JSON.stringify({ v: 1, type: 'step', stage: 'experts', expert: 'python', step: i, steps: 200_000, loss: 1 + 1 / i, lr: 1e-3, tokens_per_s: 1, elapsed_s: i });
    const fd = openSync(file, 'w');
    for (let i = 1; i <= 200_000; i += 1000) writeSync(fd, Array.from({ length: 1000 }, (_, k) => line(i + k)).join('\n') + '\n');
    closeSync(fd);
    const log = readRunLog(file, 1000);
    assert.ok(log.events.length <= 2001, `${log.events.length} events kept`);
    assert.equal((log.events[0] as { step: number }).step, 1);
    assert.equal((log.events.at(-1) as { step: number }).step, 200_000, 'the latest point is kept');
    // The newest run's events unreadable: the report says which run it passed over and why.
    const runs = readdirSync(layout.runsDir).sort();
    writeFileSync(join(layout.runsDir, runs.at(-1)!, 'events.jsonl'), 'garbage\n{"not":"an event"}\n');
    const newer = '29991231-000000-ffff';
    mkdirSync(join(layout.runsDir, newer), { recursive: true });
    writeFileSync(join(layout.runsDir, newer, 'events.jsonl'), '\u0000\u0001 not json\n');
    const input = collectReport(layout);
    assert.ok(input.problems.some((p) => p.includes(newer) && /no readable training step/.test(p)), input.problems.join('\n'));
  } finally {
    ws.cleanup();
  }
});
