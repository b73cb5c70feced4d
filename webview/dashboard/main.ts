import { provideVSCodeDesignSystem, vsCodeButton } from '@vscode/webview-ui-toolkit';
import { drawChart, seriesColor, type Series } from '../shared/chart';
import type { DashboardEval, DashboardStep, HostMessage, WebviewMessage } from './protocol';

provideVSCodeDesignSystem().register(vsCodeButton());

declare function acquireVsCodeApi(): { postMessage(m: WebviewMessage): void };
const vscode = acquireVsCodeApi();

const train = new Map<string, { x: number; y: number }[]>();
const held = new Map<string, { x: number; y: number }[]>();
const latest = new Map<string, DashboardStep>();
let status = 'idle';
let device: string | null = null;
let pending = false;

const $ = (id: string) => document.getElementById(id)!;
const canvas = $('chart') as HTMLCanvasElement;

function addStep(s: DashboardStep): void {
  const list = train.get(s.expert) ?? [];
  list.push({ x: s.step, y: s.loss });
  train.set(s.expert, list);
  latest.set(s.expert, s);
}

function addEval(e: DashboardEval): void {
  const list = held.get(e.expert) ?? [];
  list.push({ x: e.step, y: e.loss });
  held.set(e.expert, list);
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
  const names = [...new Set([...train.keys(), ...held.keys()])].sort();
  const series: Series[] = [];
  names.forEach((name, i) => {
    series.push({ name, points: train.get(name) ?? [], colorIndex: i });
    if (held.has(name)) series.push({ name: `${name} (held-out)`, points: held.get(name)!, colorIndex: i, dashed: true });
  });
  drawChart(canvas, series);
  canvas.dataset['points'] = String(series.reduce((n, s) => n + s.points.length, 0));
  $('legend').replaceChildren(
    ...names.map((name, i) => {
      const item = document.createElement('span');
      item.className = 'legend-item';
      const swatch = document.createElement('span');
      swatch.className = 'swatch';
      swatch.style.background = seriesColor(i);
      const s = latest.get(name);
      item.append(swatch, document.createTextNode(`${name}${s ? ` ${s.loss.toFixed(3)}` : ''}`));
      return item;
    }),
  );
  const any = [...latest.values()][0];
  const eta = any && any.step > 0 ? (any.elapsedS / any.step) * (any.steps - any.step) : undefined;
  $('status').textContent = status;
  $('device').textContent = device ?? '—';
  $('progress').textContent = any ? `${any.step} / ${any.steps}` : '—';
  $('lr').textContent = any ? any.lr.toExponential(2) : '—';
  $('tps').textContent = any ? Math.round(any.tokensPerS).toLocaleString() : '—';
  $('eta').textContent = eta !== undefined ? `${Math.round(eta)} s` : '—';
  ($('stop') as HTMLButtonElement).disabled = status !== 'running';
}

window.addEventListener('message', (ev: MessageEvent<HostMessage>) => {
  const m = ev.data;
  switch (m.type) {
    case 'reset':
      train.clear();
      held.clear();
      latest.clear();
      m.steps.forEach(addStep);
      m.evals.forEach(addEval);
      status = m.status;
      device = m.device;
      break;
    case 'step':
      addStep(m.step);
      break;
    case 'eval':
      addEval(m.eval);
      break;
    case 'status':
      status = m.status;
      if (m.device !== undefined) device = m.device;
      break;
  }
  schedule();
});

$('stop').addEventListener('click', () => vscode.postMessage({ type: 'stop' }));
window.addEventListener('resize', schedule);
vscode.postMessage({ type: 'ready' });
render();
