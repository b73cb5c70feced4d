import { evalColumns, mean, type EvalReport } from '../eval/evaluate';
import { isFiniteNumber } from '../util/json';
import { completionTable, editorContextTable, embeddedTable } from './completionTables';
import { colorMap, fractionBars, heatmap, lineChart, type ChartSeries } from './charts';
import type { ReportInput } from './collect';
import type { LossCurve, StageCurves } from './curves';
import { html, raw, type Html } from './html';
import { REPORT_CSS } from './style';

/**
 * No scripts, no fetches: the policy makes that a property of the file rather than a promise of
 * this code (an escaping slip could not run anything).
 */
const CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

const STAGE_TITLES: Record<string, string> = {
  experts: 'Stage 1: experts (one LoRA per domain, trained together)',
  router: 'Stage 2: router (L = L_LM + η·L_cls)',
  mixed: 'Baseline: one LoRA on the mixed data',
};

const loss = (x: unknown) => (isFiniteNumber(x) ? x.toFixed(3) : '—');
const pct = (x: unknown) => (isFiniteNumber(x) ? `${(x * 100).toFixed(0)}%` : '—');
const count = (x: unknown) => (isFiniteNumber(x) ? Math.round(x).toLocaleString('en-US') : '—');

const notAvailable = (what: string, how: Html | string) => html`<p class="na">${what} not available: ${how}</p>`;

function curveName(stage: string, c: LossCurve): string {
  if (!c.heldOut) return `${c.expert} (train)`;
  // Stage 1 evaluates each expert on its own domain; the later stages evaluate one model per domain.
  return c.domain === undefined || c.domain === c.expert ? `${c.expert} (held-out)` : `${stage === 'experts' ? c.expert + ' on ' : ''}${c.domain} (held-out)`;
}

function stageSection(s: StageCurves, color: (n: string) => string): Html {
  const groupOf = (c: StageCurves['curves'][number]) => (s.stage === 'experts' ? c.expert : c.heldOut && c.domain ? c.domain : c.expert);
  const groups = [...new Set(s.curves.map(groupOf))];
  const series: ChartSeries[] = s.curves.map((c) => ({
    name: curveName(s.stage, c),
    // Per-domain held-out curves of the router and mixed stages take their domain's colour.
    color: color(c.heldOut && s.stage !== 'experts' && c.domain ? c.domain : c.expert),
    dashed: c.heldOut,
    points: c.points,
    // By index: names come from files and never reach the CSS below.
    group: String(groups.indexOf(groupOf(c))),
  }));
  const experts = [...new Set(s.curves.filter((c) => !c.heldOut).map((c) => c.expert))];
  return html`<section class="stage" data-stage="${s.stage}"><h3>${STAGE_TITLES[s.stage] ?? `Stage ${s.stage}`}</h3>
<p class="muted">${s.steps} steps · ${experts.length} training curve${experts.length === 1 ? '' : 's'}${s.curves.some((c) => c.heldOut) ? ', held-out evaluations dashed' : ''}</p>
${groups.length > 2 ? isolator(s.stage, groups) : ''}
${lineChart(series, { label: `loss curves, stage ${s.stage}`, xLabel: `${s.stage} step`, yLabel: 'loss (nats/token)' })}</section>`;
}

/**
 * Radio buttons that show one expert's curves alone (CSS only: the report runs no script). Each
 * choice hides every series of another group through a :has() rule written for it.
 */
function isolator(stage: string, groups: string[]): Html {
  const safe = stage.replace(/[^a-z0-9_-]/gi, '');
  const id = (i: number | 'all') => `iso-${safe}-${i}`;
  const rules = groups.map((_, i) => `section.stage:has(#${id(i)}:checked) g.series:not([data-group="${i}"]){display:none}`).join('');
  return html`<style>${raw(rules)}</style><div class="isolate" role="radiogroup" aria-label="show one expert's curves"><span class="muted">show:</span>
<label><input type="radio" name="${id('all')}" id="${id('all')}" checked> all</label>${groups.map((g, i) => html` <label><input type="radio" name="${id('all')}" id="${id(i)}"> ${g}</label>`)}</div>`;
}

function evalTable(r: EvalReport): Html {
  // What MoA is judged on first; each expert on every domain is the heatmap below, so the table
  // fits the page however many experts there are.
  const order = ['MoA label', 'MoA learned', 'mixed', 'base', 'router acc'];
  const cols = evalColumns(r).filter((c) => order.includes(c.name)).sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
  const n = (d: string) => r.windowsPerDomain?.[d];
  const se = (c: (typeof cols)[number], d: string) => {
    const v = c.se?.(d);
    return typeof v === 'number' ? html`<span class="se"> ±${v.toFixed(3)}</span>` : '';
  };
  const rows = r.domains.map((d) => {
    const lossVals = cols.filter((c) => c.kind === 'loss').map((c) => c.get(d)).filter(isFiniteNumber);
    const best = lossVals.length ? Math.min(...lossVals) : undefined;
    return html`<tr data-domain="${d}"><td>${d}</td><td class="n">${n(d) ?? ''}</td>${cols.map((c) => {
      const v = c.get(d);
      return html`<td${raw(c.kind === 'loss' && v === best ? ' class="best"' : '')}>${c.kind === 'pct' ? pct(v) : loss(v)}${se(c, d)}</td>`;
    })}</tr>`;
  });
  const missing = Object.entries(r.tooLittleHeldOut ?? {}).map(([d, tokens]) => html`<tr data-domain="${d}" class="unscored"><td>${d}</td><td class="n">0</td><td colspan="${cols.length}">too little held-out data (${tokens} tokens; a window is ${r.seqLen}): not scored</td></tr>`);
  const means = cols.map((c) => mean(r.domains.map((d) => c.get(d))));
  return html`<div class="table-wrap"><table class="eval"><thead><tr><th>domain</th><th title="held-out windows">n</th>${cols.map((c) => html`<th>${c.name}</th>`)}</tr></thead>
<tbody>${rows}${missing}</tbody>
<tfoot><tr><td>mean</td><td></td>${cols.map((c, i) => html`<td>${c.kind === 'pct' ? pct(means[i]) : loss(means[i])}</td>`)}</tr></tfoot></table></div>`;
}

function headline(r: EvalReport): Html {
  const m = (get: (d: string) => unknown) => mean(r.domains.map(get));
  const items: [string, string][] = [
    ['base model', loss(m((d) => r.base[d]))],
    ['MoA, label routing', loss(m((d) => r.label[d]))],
    ...(r.learned ? [['MoA, learned router', loss(m((d) => r.learned?.[d]))] as [string, string]] : []),
    ...(r.mixed ? [['mixed baseline', loss(m((d) => r.mixed?.[d]))] as [string, string]] : []),
  ];
  return html`<div class="headline">${items.map(([k, v]) => html`<div><span class="muted">${k}</span><b>${v}</b></div>`)}</div>`;
}

function evalSection(input: ReportInput): Html {
  const e = input.eval;
  if (!e) return html`<h2>Held-out evaluation</h2>${notAvailable('the eval table is', html`run <code>moa eval</code>`)}`;
  const r = e.report;
  return html`<h2>Held-out evaluation</h2>
<p class="muted">Mean held-out loss per domain (nats/token, lower is better) on up to ${r.windows} windows of ${r.seqLen} tokens (n: how many), ± one standard error: a difference smaller than that is noise. Bold: the best figure of each row.${r.learned ? (r.learnedSource === 'onnx' ? ' “MoA learned”: the learned router decides on the first half of each window (from its token n-grams) and holds it, as for a completion.' : ' “MoA learned” comes from the trainer’s stage-2 evaluation on its own held-out windows.') : ''}</p>
${headline(r)}${evalTable(r)}<p class="source">from ${e.source}${r.created ? `, ${r.created}` : ''}</p>
${completionTable(r.completions)}${editorContextTable(r.editorContext)}${embeddedTable(r.embedded)}
<h3>Domain × expert held-out loss</h3>
<p class="muted">Each expert on every domain’s held-out data, experts in the rows’ order; the outlined cell is the row’s best, colours relative to each row. A diagonal of best cells means each expert learned its own domain.</p>
${r.experts.length && r.domains.length ? heatmap(r.domains, inRowOrder(r.domains, r.experts), (d, x) => r.matrix[d]?.[x], { label: 'domain by expert held-out loss', format: (v) => v.toFixed(3), lowIsStrong: true, markRowBest: true, perRow: true }) : notAvailable('the heatmap is', 'the eval report has no experts')}`;
}

/** Columns in the rows' order (an expert named after a row's domain under it), the rest after. */
function inRowOrder(rows: string[], cols: string[]): string[] {
  return [...rows.filter((r) => cols.includes(r)), ...cols.filter((c) => !rows.includes(c))];
}

function routerSection(input: ReportInput, color: (n: string) => string): Html {
  const r = input.router;
  if (!r) return html`<h2>Router</h2>${notAvailable('router accuracy is', html`train the router with <code>moa train</code> (stage 2 needs two or more domains), then run <code>moa report</code> again`)}`;
  const domains = Object.keys(r.accuracy);
  const hasConfusion = Object.values(r.confusion).some((row) => row && Object.keys(row).length);
  const experts = r.experts.length ? r.experts : [...new Set(Object.values(r.confusion).flatMap((row) => (row ? Object.keys(row) : [])))];
  return html`<h2>Router</h2>
<p class="muted">Share of each domain’s held-out windows that the learned router sends to that domain’s own expert.</p>
${domains.length ? fractionBars(domains.map((d) => ({ label: d, value: r.accuracy[d] ?? null, color: color(d) })), 'router accuracy per domain') : notAvailable('per-domain accuracy is', 'the router recorded none')}
<h3>Confusion</h3>
${hasConfusion ? html`<p class="muted">Row: the domain of the held-out window; column: the expert the router chose; cell: share of the row’s windows.</p>${heatmap(domains, inRowOrder(domains, experts), (d, x) => (r.confusion[d] ? (r.confusion[d]![x] ?? 0) : null), { label: 'router confusion matrix', format: (v) => `${(v * 100).toFixed(0)}%`, scale: [0, 1], lowIsStrong: false, markRowBest: true })}` : notAvailable('the confusion matrix is', 'this router recorded no per-expert shares')}
<p class="source">from ${r.source}</p>`;
}

function datasetSection(input: ReportInput): Html {
  const ds = input.dataset;
  if (!ds) return html`<h2>Datasets</h2>${notAvailable('dataset statistics are', html`run <code>moa data</code>`)}`;
  const m = ds.manifest;
  const total = (k: 'files' | 'bytes' | 'trainFiles' | 'valFiles' | 'trainTokens' | 'valTokens') => m.domains.reduce((a, d) => a + (isFiniteNumber(d[k]) ? d[k] : 0), 0);
  const skipped = Object.entries(m.skipped ?? {}).filter(([, n]) => isFiniteNumber(n) && n > 0);
  return html`<h2>Datasets</h2>
<p class="muted">Tokenizer ${m.tokenizer ?? '?'}; built ${m.created ?? '?'}.</p>
<div class="table-wrap"><table class="dataset"><thead><tr><th>domain</th><th>files</th><th>train files</th><th>held-out files</th><th>bytes</th><th>train tokens</th><th>held-out tokens</th></tr></thead>
<tbody>${m.domains.map((d) => html`<tr data-domain="${d.domain}"><td>${d.domain}</td><td>${count(d.files)}</td><td>${count(d.trainFiles)}</td><td>${count(d.valFiles)}</td><td>${count(d.bytes)}</td><td>${count(d.trainTokens)}</td><td>${count(d.valTokens)}</td></tr>`)}</tbody>
<tfoot><tr><td>total</td><td>${count(total('files'))}</td><td>${count(total('trainFiles'))}</td><td>${count(total('valFiles'))}</td><td>${count(total('bytes'))}</td><td>${count(total('trainTokens'))}</td><td>${count(total('valTokens'))}</td></tr></tfoot></table></div>
<p class="muted">${count(m.unassigned ?? 0)} file(s) in no domain${skipped.length ? html`; skipped: ${skipped.map(([k, n]) => `${k} ${n}`).join(', ')}` : ''}.</p>
<p class="source">from ${ds.source}</p>`;
}

function runFactsList(input: ReportInput): Html {
  const r = input.run;
  const rows: [string, string][] = [['workspace', input.workspace], ['base model', input.baseModel ?? 'unknown']];
  if (r) {
    rows.push(['run', `${r.id} (${r.status}${r.stopped ? ', stopped early' : ''})`]);
    if (r.created) rows.push(['started', r.created]);
    if (isFiniteNumber(r.elapsedS)) rows.push(['training time', `${r.elapsedS.toFixed(0)} s`]);
    if (r.device) rows.push(['device', `${r.device}${r.gpu ? ` (${r.gpu})` : ''}, torch ${r.torch ?? '?'}`]);
    for (const p of r.plans) rows.push([`plan: ${p.stage}`, `${p.steps} steps, ${p.experts.join(', ')}${isFiniteNumber(p.tokens) ? `, ${count(p.tokens)} tokens` : ''}${isFiniteNumber(p.paramsTrainable) ? `, ${count(p.paramsTrainable)} trainable parameters` : ''}`]);
    if (r.error) rows.push(['error', r.error]);
  }
  rows.push(['generated', input.generated]);
  return html`<dl class="facts">${rows.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>`;
}

/** The whole report as one HTML document: inline CSS and SVG, nothing to load, nothing to run. */
export function renderReport(input: ReportInput): string {
  const domains = input.dataset?.manifest.domains.map((d) => d.domain) ?? input.eval?.report.domains ?? [];
  const color = colorMap([...domains, ...input.stages.flatMap((s) => s.curves.map((c) => c.expert))]);
  const curves = input.stages.length
    ? html`<p class="muted">Training loss of each expert per optimizer step (faint, with its moving average in bold) and held-out loss at each evaluation (dashed); each stage has its own step axis. Long runs are drawn downsampled.</p>${input.stages.map((s) => stageSection(s, color))}`
    : notAvailable('loss curves are', input.run ? html`run ${input.run.id} recorded no training steps` : html`run <code>moa train</code>`);
  const page = html`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${raw(CSP)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>MoA Studio report${input.run ? ` · ${input.run.id}` : ''}</title>
<style>${raw(REPORT_CSS)}</style></head>
<body><main>
<h1>MoA Studio report</h1>
<p class="muted">Mixture-of-LoRAs: one LoRA expert per domain on a frozen base model, routed per file.</p>
${runFactsList(input)}
${input.problems.length ? html`<h2>Problems</h2><ul class="problems">${input.problems.map((p) => html`<li>${p}</li>`)}</ul>` : ''}
<h2>Loss curves</h2>
${curves}
${evalSection(input)}
${routerSection(input, color)}
${datasetSection(input)}
<footer>Written by <code>moa report</code>. Self-contained: inline styles and SVG, no scripts, nothing loaded from elsewhere.</footer>
</main></body></html>
`;
  return page.text;
}
