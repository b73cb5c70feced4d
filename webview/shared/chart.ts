/** Small canvas charts for the inspector (the training dashboard uses uPlot). */
export interface Series {
  name: string;
  points: { x: number; y: number }[];
  dashed?: boolean;
  colorIndex: number;
}

const PALETTE_VARS = ['--vscode-charts-blue', '--vscode-charts-orange', '--vscode-charts-green', '--vscode-charts-purple', '--vscode-charts-red', '--vscode-charts-yellow'];
const FALLBACK = ['#3794ff', '#d18616', '#89d185', '#b180d7', '#f14c4c', '#cca700'];

export function seriesColor(i: number): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(PALETTE_VARS[i % PALETTE_VARS.length]!).trim();
  return v || FALLBACK[i % FALLBACK.length]!;
}

/** Keeps at most `max` points, taking the min and max of each bucket so spikes stay visible. */
export function downsample(points: { x: number; y: number }[], max: number): { x: number; y: number }[] {
  if (points.length <= max) return points;
  const bucket = Math.ceil(points.length / (max / 2));
  const out: { x: number; y: number }[] = [];
  for (let i = 0; i < points.length; i += bucket) {
    let lo = points[i]!;
    let hi = points[i]!;
    for (let j = i; j < Math.min(points.length, i + bucket); j++) {
      if (points[j]!.y < lo.y) lo = points[j]!;
      if (points[j]!.y > hi.y) hi = points[j]!;
    }
    out.push(...(lo.x <= hi.x ? [lo, hi] : [hi, lo]));
  }
  return out;
}

export function drawChart(canvas: HTMLCanvasElement, series: Series[], xLabel = 'step'): void {
  const { ctx, w, h, fg, grid } = prepare(canvas);
  const all = series.flatMap((s) => s.points);
  const pad = { l: 48, r: 12, t: 10, b: 24 };
  ctx.fillStyle = fg;
  if (all.length === 0) {
    ctx.fillText('waiting for the first step…', pad.l, h / 2);
    return;
  }
  const xMax = Math.max(1, ...all.map((p) => p.x));
  let yMin = Math.min(...all.map((p) => p.y));
  let yMax = Math.max(...all.map((p) => p.y));
  if (yMax - yMin < 1e-6) {
    yMin -= 0.5;
    yMax += 0.5;
  }
  const X = (x: number) => pad.l + (x / xMax) * (w - pad.l - pad.r);
  const Y = (y: number) => pad.t + (1 - (y - yMin) / (yMax - yMin)) * (h - pad.t - pad.b);
  ctx.strokeStyle = grid;
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = yMin + ((yMax - yMin) * i) / 4;
    ctx.beginPath();
    ctx.moveTo(pad.l, Y(y));
    ctx.lineTo(w - pad.r, Y(y));
    ctx.stroke();
    ctx.fillText(y.toFixed(2), 4, Y(y) + 4);
  }
  ctx.fillText(`${xLabel} ${xMax}`, w - pad.r - 60, h - 6);
  for (const s of series) {
    const pts = downsample(s.points, Math.max(200, Math.floor(w * 2)));
    ctx.strokeStyle = seriesColor(s.colorIndex);
    ctx.lineWidth = s.dashed ? 1.5 : 2;
    ctx.setLineDash(s.dashed ? [5, 4] : []);
    ctx.beginPath();
    pts.forEach((p, i) => (i ? ctx.lineTo(X(p.x), Y(p.y)) : ctx.moveTo(X(p.x), Y(p.y))));
    ctx.stroke();
  }
  ctx.setLineDash([]);
}

function prepare(canvas: HTMLCanvasElement): { ctx: CanvasRenderingContext2D; w: number; h: number; fg: string; grid: string } {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  const ctx = canvas.getContext('2d')!;
  ctx.scale(dpr, dpr);
  ctx.clearRect(0, 0, w, h);
  ctx.font = '11px var(--vscode-font-family, sans-serif)';
  const style = getComputedStyle(document.body);
  return { ctx, w, h, fg: style.getPropertyValue('--vscode-foreground').trim() || '#ccc', grid: style.getPropertyValue('--vscode-editorWidget-border').trim() || '#444' };
}

/** Grouped bars: one group per label, one bar per series. */
export function drawBars(canvas: HTMLCanvasElement, labels: string[], series: { name: string; values: number[] }[]): void {
  const { ctx, w, h, fg, grid } = prepare(canvas);
  const pad = { l: 48, r: 8, t: 8, b: 22 };
  const max = Math.max(1e-12, ...series.flatMap((s) => s.values));
  const groupW = (w - pad.l - pad.r) / Math.max(1, labels.length);
  const barW = Math.max(2, (groupW * 0.8) / Math.max(1, series.length));
  ctx.strokeStyle = grid;
  ctx.fillStyle = fg;
  for (let i = 0; i <= 4; i++) {
    const y = pad.t + ((h - pad.t - pad.b) * i) / 4;
    ctx.beginPath();
    ctx.moveTo(pad.l, y);
    ctx.lineTo(w - pad.r, y);
    ctx.stroke();
    ctx.fillText((max * (1 - i / 4)).toPrecision(2), 2, y + 4);
  }
  labels.forEach((label, g) => {
    const x0 = pad.l + g * groupW + groupW * 0.1;
    series.forEach((s, k) => {
      const v = s.values[g] ?? 0;
      const bh = (v / max) * (h - pad.t - pad.b);
      ctx.fillStyle = seriesColor(k);
      ctx.fillRect(x0 + k * barW, h - pad.b - bh, barW - 1, bh);
    });
    ctx.fillStyle = fg;
    ctx.fillText(label, x0, h - 6);
  });
}

/** A matrix as coloured cells with the values printed; rows and columns labelled. */
export function drawHeatmap(canvas: HTMLCanvasElement, rows: string[], cols: string[], values: number[][]): void {
  const { ctx, w, h, fg } = prepare(canvas);
  const pad = { l: 90, t: 20 };
  const cw = (w - pad.l) / Math.max(1, cols.length);
  const ch = (h - pad.t) / Math.max(1, rows.length);
  const flat = values.flat();
  const lo = Math.min(...flat);
  const hi = Math.max(...flat);
  const base = seriesColor(0);
  rows.forEach((row, i) => {
    ctx.fillStyle = fg;
    ctx.fillText(row, 4, pad.t + i * ch + ch / 2 + 4);
    cols.forEach((_, j) => {
      const v = values[i]![j]!;
      ctx.globalAlpha = hi > lo ? 0.15 + (0.85 * (v - lo)) / (hi - lo) : 0.5;
      ctx.fillStyle = base;
      ctx.fillRect(pad.l + j * cw, pad.t + i * ch, cw - 2, ch - 2);
      ctx.globalAlpha = 1;
      ctx.fillStyle = fg;
      ctx.fillText(v.toFixed(2), pad.l + j * cw + 4, pad.t + i * ch + ch / 2 + 4);
    });
  });
  cols.forEach((c, j) => {
    ctx.fillStyle = fg;
    ctx.fillText(c, pad.l + j * cw + 4, 12);
  });
}
