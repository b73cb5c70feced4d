import { provideVSCodeDesignSystem, vsCodeDataGrid, vsCodeDataGridCell, vsCodeDataGridRow, vsCodeDivider } from '@vscode/webview-ui-toolkit';
import { drawBars, drawChart, drawHeatmap } from '../shared/chart';
import type { InspectorData, InspectorHostMessage, InspectorWebviewMessage } from './protocol';

provideVSCodeDesignSystem().register(vsCodeDataGrid(), vsCodeDataGridRow(), vsCodeDataGridCell(), vsCodeDivider());

declare function acquireVsCodeApi(): { postMessage(m: InspectorWebviewMessage): void };
const vscode = acquireVsCodeApi();
const $ = (id: string) => document.getElementById(id)!;
let current: InspectorData | undefined;

function fmt(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : String(n);
}

function fillGrid(grid: HTMLElement, rows: string[][], header = false): void {
  grid.replaceChildren(
    ...rows.map((cells, r) => {
      const row = document.createElement('vscode-data-grid-row');
      if (header && r === 0) row.setAttribute('row-type', 'header');
      for (const [i, text] of cells.entries()) {
        const cell = document.createElement('vscode-data-grid-cell');
        cell.setAttribute('grid-column', String(i + 1));
        if (header && r === 0) cell.setAttribute('cell-type', 'columnheader');
        cell.textContent = text;
        row.append(cell);
      }
      return row;
    }),
  );
}

function render(): void {
  const d = current;
  if (!d) return;
  $('title').textContent = `Expert ${d.expert}`;
  const facts: [string, string][] = [
    ['rank / alpha', `${d.r} / ${d.alpha}`],
    ['targets', d.targetModules.join(', ')],
    ['parameters', fmt(d.parameters)],
    ['size', `${fmt(d.sizeBytes)}B`],
    ['train loss', typeof d.meta['train_loss'] === 'number' ? (d.meta['train_loss'] as number).toFixed(4) : '—'],
    ['held-out loss', typeof d.meta['val_loss'] === 'number' ? (d.meta['val_loss'] as number).toFixed(4) : '—'],
    ['steps', String(d.meta['steps'] ?? '—')],
    ['data', d.data ? `${d.data.files} files, ${fmt(d.data.bytes)}B, ${fmt(d.data.trainTokens)} train / ${fmt(d.data.valTokens)} held-out tokens` : '—'],
  ];
  fillGrid($('facts'), facts);
  $('completions-section').hidden = !d.completions;
  if (d.completions) {
    const head = ['served by', 'exact match', 'edit similarity', 'accepted characters', 'this expert served', 'first token p50', 'line p50 / p95'];
    fillGrid($('completions'), [head, ...d.completions.map((c) => [c.column, `${Math.round(c.exact * 100)}%`, c.editSimilarity.toFixed(2), `${c.acceptedChars.toFixed(1)} of ${c.targetChars.toFixed(0)}`, `${Math.round(c.servedByOwnExpert * 100)}%`, `${Math.round(c.firstTokenP50Ms)} ms`, `${Math.round(c.p50Ms)} / ${Math.round(c.p95Ms)} ms`])], true);
  }
  const layers = [...new Set(d.stats.map((s) => s.layer))].sort((a, b) => a - b);
  const modules = [...new Set(d.stats.map((s) => s.module))];
  drawBars(
    $('norms') as HTMLCanvasElement,
    layers.map((l) => `L${l}`),
    modules.map((m) => ({ name: m, values: layers.map((l) => d.stats.find((s) => s.layer === l && s.module === m)?.norm ?? 0) })),
  );
  $('norms-legend').textContent = `‖ΔW‖ per layer: ${modules.join(', ')} (bars left to right)`;
  drawChart(
    $('spectrum') as HTMLCanvasElement,
    modules.map((m, i) => {
      const rows = d.stats.filter((s) => s.module === m);
      const mean = rows[0]!.sigma.map((_, k) => rows.reduce((a, s) => a + (s.sigma[k] ?? 0), 0) / rows.length);
      return { name: m, colorIndex: i, points: mean.map((y, k) => ({ x: k + 1, y })) };
    }),
    'σ index',
  );
  const er = d.stats.reduce((a, s) => a + s.effectiveRank, 0) / Math.max(1, d.stats.length);
  $('spectrum-legend').textContent = `singular values σ₁…σ${d.r}, mean over layers; mean effective rank ${er.toFixed(2)} of ${d.r}`;
  drawChart($('curve') as HTMLCanvasElement, [{ name: d.expert, colorIndex: 0, points: d.curve.map((p) => ({ x: p.step, y: p.loss })) }]);
  // Unhide before drawing: a hidden canvas has no size to draw into.
  $('similarity-section').hidden = d.similarity.experts.length < 2;
  if (d.similarity.experts.length > 1) drawHeatmap($('similarity') as HTMLCanvasElement, d.similarity.experts, d.similarity.experts, d.similarity.matrix);
  $('eval-section').hidden = !d.evalMatrix;
  if (d.evalMatrix) drawHeatmap($('eval') as HTMLCanvasElement, d.evalMatrix.domains, d.evalMatrix.experts, d.evalMatrix.values);
  $('confusion-section').hidden = !d.routerConfusion;
  if (d.routerConfusion) drawHeatmap($('confusion') as HTMLCanvasElement, d.routerConfusion.domains, d.routerConfusion.experts, d.routerConfusion.values);
  document.body.dataset['ready'] = 'true';
}

window.addEventListener('message', (ev: MessageEvent<InspectorHostMessage>) => {
  const m = ev.data;
  if (m.type === 'show') current = m.data;
  else $('title').textContent = m.message;
  render();
});
window.addEventListener('resize', render);
vscode.postMessage({ type: 'ready' });
