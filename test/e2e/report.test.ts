// The HTML report of a real (small) training run, opened from disk in headless Chromium: it must
// render its charts and tables with nothing failing and nothing loaded; the screenshot is kept in
// artifacts/report/. The same small run checks `moa complete --expert`, which the demo uses.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { repoRoot, tempWorkspace } from '../helpers/tmp';

const root = repoRoot();
const cli = join(root, 'dist', 'cli.js');
const CHROMIUM = '/usr/bin/chromium';
const artifacts = join(root, 'artifacts', 'report');
const DOMAINS = ['markdown', 'python', 'typescript'];
const noChromium = existsSync(CHROMIUM) ? false : `Debian chromium is not installed at ${CHROMIUM} (node scripts/e2e-tools.mjs installs it)`;
if (noChromium) console.log(`report screenshot test skipped: ${noChromium}`);

let ws: { root: string; cleanup: () => void } | undefined;
let browser: Browser | undefined;
let reportFile = '';

function files(): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < 10; i++) {
    out[`src/store${i}.py`] = `import os\n\n\nclass Store${i}:\n    def __init__(self, name):\n        self.name = name\n        self.items = {}\n\n    def put(self, key, value):\n        self.items[key] = value\n        return len(self.items)\n\n\ndef load_${i}(path, limit=${i + 3}):\n    with open(path) as handle:\n        return [line.strip() for line in handle.readlines()[:limit]]\n`;
    out[`docs/guide${i}.md`] = `# Guide ${i}\n\nThis guide explains how to set up the project on a new machine.\n\n## Install\n\nRun the installer and follow the prompts. The default options work for most people.\n\n- Open the dashboard from the menu.\n- Pick a workspace and press **Start**.\n\n## Troubleshooting\n\nIf the dashboard stays empty, check the log under *View → Output* and read the [FAQ](faq.md#empty).\n`;
    out[`web/view${i}.ts`] = `export interface View${i} {\n  id: number;\n  title: string;\n  tags: string[];\n}\n\nexport function render${i}(view: View${i}): string {\n  return view.tags.map((t) => \`<li>\${t}</li>\`).join('') + view.title;\n}\n\nexport const defaults${i}: View${i} = { id: ${i}, title: 'view ${i}', tags: ['a', 'b'] };\n`;
  }
  return out;
}

function moa(args: string[]): string {
  const r = spawnSync(process.execPath, [cli, ...args, '--workspace', ws!.root], { cwd: ws!.root, encoding: 'utf8', timeout: 600_000 });
  assert.equal(r.status, 0, `moa ${args.join(' ')} failed:\n${r.stderr}\n${r.stdout.slice(-2000)}`);
  return r.stdout;
}

before(async () => {
  assert.ok(existsSync(cli), `${cli} missing: run node scripts/build.mjs`);
  ws = tempWorkspace(files());
  // A real run, kept small: every stage, a few steps each, then eval and the report.
  const init = JSON.parse(moa(['init', '--json']));
  assert.deepEqual(init.domains.map((d: { name: string }) => d.name).sort(), DOMAINS, 'moa init found the three kinds of file');
  moa(['data']);
  moa(['train', '--steps', '8', '--router-steps', '4', '--stages', 'experts,router,mixed']);
  moa(['eval', '--windows', '2', '--completions', '--positions', '2']);
  reportFile = JSON.parse(moa(['report', '--json'])).path;
  if (noChromium) return;
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
});

after(async () => {
  await browser?.close().catch(() => undefined);
  ws?.cleanup();
});

test('the report of a real run renders in headless Chromium: curves, eval table, heatmap, nothing failing or fetched', { skip: noChromium, timeout: 900_000 }, async () => {
  assert.equal(reportFile, join(ws!.root, '.moa', 'report.html'));
  const source = readFileSync(reportFile, 'utf8');
  assert.ok(!/<script/i.test(source) && !/https?:\/\//i.test(source), 'self-contained');
  const page = await browser!.newPage({ viewport: { width: 1100, height: 900 } });
  const problems: string[] = [];
  const requests: string[] = [];
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`));
  page.on('request', (r) => requests.push(r.url()));
  const url = pathToFileURL(reportFile).href;
  const res = await page.goto(url, { waitUntil: 'load' });
  assert.ok(res === null || res.ok(), 'the file loads');

  // Every stage of the run has its chart, every expert its training curve, and each line is drawn.
  for (const stage of ['experts', 'router', 'mixed']) assert.equal(await page.locator(`section.stage[data-stage="${stage}"] svg`).count(), 1, `stage ${stage} is drawn`);
  for (const d of DOMAINS) assert.equal(await page.locator(`section.stage[data-stage="experts"] polyline[data-series="${d} (train)"]`).count(), 1, `${d}'s curve`);
  const lines = page.locator('polyline[data-kind="train"]');
  assert.equal(await lines.count(), DOMAINS.length + 2, 'three experts, the router and the mixed baseline');
  for (const line of await lines.all()) {
    const box = await line.boundingBox();
    assert.ok(box && box.width > 100, `${await line.getAttribute('data-series')} is drawn across the chart (${JSON.stringify(box)})`);
  }
  assert.ok((await page.locator('polyline[data-kind="held-out"]').count()) >= DOMAINS.length, 'held-out curves');

  // One eval row per domain, the heatmap's cells, the router's bars, the dataset table.
  const rows = await page.locator('table.eval tbody tr').evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-domain')));
  assert.deepEqual([...rows].sort(), DOMAINS);
  assert.equal(await page.locator('svg[aria-label="domain by expert held-out loss"] g.cell').count(), DOMAINS.length ** 2);
  assert.equal(await page.locator('svg[aria-label="router accuracy per domain"] rect.bar').count(), DOMAINS.length);
  assert.equal(await page.locator('table.dataset tbody tr').count(), DOMAINS.length);
  assert.equal(await page.locator('.na').count(), 0, 'nothing is marked not available');
  const heatBox = await page.locator('svg[aria-label="domain by expert held-out loss"]').boundingBox();
  assert.ok(heatBox && heatBox.width > 100 && heatBox.height > 50, 'the heatmap has a size');
  // Each row says how many held-out windows it rests on, each figure its standard error, and the
  // table fits the page: nothing hidden behind a scrollbar.
  const counts = await page.locator('table.eval tbody td.n').allInnerTexts();
  assert.ok(counts.length === DOMAINS.length && counts.every((c) => Number(c) >= 1), `n: ${counts}`);
  assert.ok((await page.locator('table.eval td .se').count()) > 0, 'standard errors shown');
  // What users see: completions per domain under every way of serving, and routing at the cursor.
  const completionRows = await page.locator('table.completions tbody tr').evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-domain')));
  assert.deepEqual([...completionRows].sort(), DOMAINS);
  assert.deepEqual(await page.locator('table.completions thead th').allInnerTexts(), ['domain', 'n', 'base', 'label (own expert)', 'label, prefix only', 'mixed', 'learned', 'auto'], 'moa-tiny has FIM sentinels: the prefix-only column is there');
  assert.ok((await page.locator('table.embedded tbody tr').count()) >= 1, 'fenced blocks in Markdown, scored');
  const [completionWidth, pageWidth] = await page.locator('.table-wrap:has(table.completions)').evaluate((el) => [el.scrollWidth, el.clientWidth]);
  assert.ok(completionWidth! <= pageWidth!, `the completion table fits: ${completionWidth} px in ${pageWidth}`);
  const fits = await page.locator('.table-wrap:has(table.eval)').evaluate((el) => el.scrollWidth <= el.clientWidth);
  assert.ok(fits, 'the eval table fits without scrolling');
  // Showing one expert's curves hides the others (CSS only).
  const stage1 = page.locator('section.stage[data-stage="experts"]');
  await stage1.locator('label', { hasText: DOMAINS[0] }).locator('input').check();
  const visible = await stage1.locator('g.series').evaluateAll((gs) => gs.filter((g) => getComputedStyle(g).display !== 'none').map((g) => g.getAttribute('data-group')));
  assert.ok(visible.length >= 1 && new Set(visible).size === 1, `one expert's curves left: ${visible}`);
  await stage1.locator('label', { hasText: 'all' }).locator('input').check();

  mkdirSync(artifacts, { recursive: true });
  const shot = join(artifacts, 'report.png');
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(readFileSync(shot).length > 10_000, 'a real screenshot');
  console.log(`report screenshot: ${shot}`);
  assert.deepEqual(problems, [], 'no console errors, no failed requests');
  assert.deepEqual(requests, [url], 'the page loads nothing but itself');
  await page.close();
});

test('moa complete --expert serves one request from the named expert, whatever the routing', () => {
  const file = join(ws!.root, 'src', 'store3.py');
  const c = JSON.parse(moa(['complete', file, '--line', '4', '--col', '1', '--max-tokens', '8', '--expert', 'markdown', '--json']));
  assert.deepEqual(c.route.experts, [{ name: 'markdown', weight: 1 }]);
  assert.match(c.route.reason, /expert markdown asked for this request/);
  assert.ok(c.tokens > 0);
  const routed = JSON.parse(moa(['complete', file, '--line', '4', '--col', '1', '--max-tokens', '8', '--json']));
  assert.deepEqual(routed.route.experts, [{ name: 'python', weight: 1 }], 'the next request is routed as usual');
  const r = spawnSync(process.execPath, [cli, 'complete', file, '--line', '4', '--col', '1', '--expert', 'nope', '--workspace', ws!.root], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /no usable expert "nope"[\s\S]*Experts: markdown, python, typescript/);
});
