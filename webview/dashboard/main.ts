import { provideVSCodeDesignSystem, vsCodeButton } from '@vscode/webview-ui-toolkit';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { seriesColor } from '../shared/chart';
import { LossSeries } from './series';
import type { DashboardStep, HostMessage, WebviewMessage } from './protocol';

provideVSCodeDesignSystem().register(vsCodeButton());

declare function acquireVsCodeApi(): { postMessage(m: WebviewMessage): void };
const vscode = acquireVsCodeApi();

const series = new LossSeries();
const latest = new Map<string, DashboardStep>();
let status = 'idle';
let device: string | null = null;
/** Trainer processes (torchrun ranks): the throughput shown is theirs together, and per process. */
let worldSize = 1;
let pending = false;
let plot: uPlot | undefined;
let plotNames = '';

const $ = (id: string) => document.getElementById(id)!;
const chart = $('chart');

function css(name: string, fallback: string): string {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
}

/** A new plot only when the set of series changes; otherwise new data into the same plot. */
function draw(): void {
  const width = Math.max(200, chart.clientWidth);
  const view = series.view(Math.max(200, width));
  chart.dataset['points'] = String(view.points);
  const key = view.names.join('\0');
  if (!plot || key !== plotNames) {
    plot?.destroy();
    plotNames = key;
    const fg = css('--vscode-foreground', '#ccc');
    const grid = css('--vscode-editorWidget-border', '#444');
    const base = [...new Set(view.names.map((n) => n.replace(/ \(held-out\)$/, '')))];
    plot = new uPlot(
      {
        width,
        height: 320,
        legend: { show: false },
        scales: { x: { time: false } },
        axes: [
          // Whole steps only: 1, 2, 5, 10, 20, 50… between ticks.
          { stroke: fg, grid: { stroke: grid, width: 1 }, label: 'step', labelSize: 16, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000] },
          { stroke: fg, grid: { stroke: grid, width: 1 }, label: 'loss', labelSize: 16 },
        ],
        series: [
          {},
          ...view.names.map((name, i) => ({
            label: name,
            stroke: seriesColor(base.indexOf(name.replace(/ \(held-out\)$/, ''))),
            width: view.heldOut[i] ? 1.5 : 2,
            dash: view.heldOut[i] ? [6, 4] : undefined,
            spanGaps: true,
            points: { show: view.heldOut[i] },
          })),
        ],
      },
      view.data,
      chart,
    );
  } else {
    plot.setData(view.data);
  }
}

/** Redraws at most once per animation frame however fast events arrive. */
function schedule(): void {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    render();
  });
}

function render(): void {
  draw();
  const names = [...latest.keys()].sort();
  $('legend').replaceChildren(
    ...names.map((name, i) => {
      const item = document.createElement('span');
      item.className = 'legend-item';
      const swatch = document.createElement('span');
      swatch.className = 'swatch';
      swatch.style.background = seriesColor(i);
      item.append(swatch, document.createTextNode(`${name} ${latest.get(name)!.loss.toFixed(3)}`));
      return item;
    }),
  );
  const now = [...latest.values()].sort((a, b) => b.elapsedS - a.elapsedS)[0];
  const eta = now && now.step > 0 ? (now.elapsedS / now.step) * (now.steps - now.step) : undefined;
  $('status').textContent = status;
  $('device').textContent = device ?? '—';
  $('stage').textContent = now?.stage ?? '—';
  $('progress').textContent = now ? `${now.step} / ${now.steps}` : '—';
  $('lr').textContent = now ? now.lr.toExponential(2) : '—';
  $('tps').textContent = now ? Math.round(now.tokensPerS).toLocaleString() + (worldSize > 1 ? ` (${worldSize} processes, ${Math.round(now.tokensPerS / worldSize).toLocaleString()} each)` : '') : '—';
  $('eta').textContent = eta !== undefined ? `${Math.round(eta)} s` : '—';
  ($('stop') as HTMLButtonElement).disabled = status !== 'running';
}

function addStep(s: DashboardStep): void {
  series.addStep(s);
  latest.set(s.expert, s);
}

window.addEventListener('message', (ev: MessageEvent<HostMessage>) => {
  const m = ev.data;
  switch (m.type) {
    case 'reset':
      series.clear();
      latest.clear();
      m.steps.forEach(addStep);
      m.evals.forEach((e) => series.addEval(e));
      status = m.status;
      device = m.device;
      worldSize = m.worldSize;
      break;
    case 'step':
      addStep(m.step);
      break;
    case 'eval':
      series.addEval(m.eval);
      break;
    case 'status':
      status = m.status;
      if (m.device !== undefined) device = m.device;
      if (m.worldSize !== undefined) worldSize = m.worldSize;
      break;
  }
  schedule();
});

$('stop').addEventListener('click', () => vscode.postMessage({ type: 'stop' }));
new ResizeObserver(() => {
  plot?.setSize({ width: Math.max(200, chart.clientWidth), height: 320 });
}).observe(chart);
vscode.postMessage({ type: 'ready' });
render();
