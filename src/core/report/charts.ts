import { isFiniteNumber } from '../util/json';
import { downsample, type Point } from './downsample';
import { html, raw, type Html } from './html';

/** Tableau 10: distinguishable, and still tellable apart in print. */
const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

/** One colour per name, the same in every chart of the report. */
export function colorMap(names: string[]): (name: string) => string {
  const order = [...new Set(names)];
  return (name) => {
    let i = order.indexOf(name);
    if (i < 0) i = order.push(name) - 1;
    return PALETTE[i % PALETTE.length]!;
  };
}

/** About `n` round tick values covering [min, max]. */
function niceTicks(min: number, max: number, n = 5): number[] {
  const span = max - min;
  if (!(span > 0) || !Number.isFinite(span)) return [min];
  let step = 10 ** Math.floor(Math.log10(span / n));
  const err = span / n / step;
  step *= err >= 7.5 ? 10 : err >= 3.5 ? 5 : err >= 1.5 ? 2 : 1;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + span * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function tickLabel(v: number, ticks: number[]): string {
  const step = ticks.length > 1 ? Math.abs(ticks[1]! - ticks[0]!) : Math.abs(v) || 1;
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step))));
  return v.toFixed(decimals);
}

const f1 = (x: number) => (Math.round(x * 10) / 10).toString();

/** A label that fits its box; the full text stays in the element's <title>. */
function clip(s: string, max: number): string {
  return s.length <= max ? s : s.slice(0, max - 1) + '…';
}

/** Training curves this long also get a moving-average line. */
const SMOOTH_FROM = 30;

/** Centred moving average over about a twentieth of the series (at least 5 points). */
function movingAverage(points: Point[]): Point[] {
  const half = Math.max(2, Math.floor(points.length / 40));
  const prefix = [0];
  for (const p of points) prefix.push(prefix[prefix.length - 1]! + p.y);
  return points.map((p, i) => {
    const from = Math.max(0, i - half);
    const to = Math.min(points.length, i + half + 1);
    return { x: p.x, y: (prefix[to]! - prefix[from]!) / (to - from) };
  });
}

export interface ChartSeries {
  name: string;
  color: string;
  dashed: boolean;
  points: Point[];
  /** Series drawn or hidden together (an expert's training and held-out curves); default: the name. */
  group?: string;
}

interface LineChartOptions {
  label: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  /** Points drawn per series at most; longer series are downsampled. */
  maxPoints?: number;
}

/** Loss curves as an inline SVG: one polyline per series (held-out ones dashed, with markers). */
export function lineChart(series: ChartSeries[], o: LineChartOptions): Html {
  const W = o.width ?? 760;
  const H = o.height ?? 300;
  const m = { l: 58, r: 14, t: 12, b: 40 };
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return html`<p class="na">no finite losses to draw</p>`;
  let [x0, x1] = [Math.min(...all.map((p) => p.x)), Math.max(...all.map((p) => p.x))];
  let [y0, y1] = [Math.min(...all.map((p) => p.y)), Math.max(...all.map((p) => p.y))];
  if (x1 === x0) (x0 -= 1), (x1 += 1);
  const pad = (y1 - y0) * 0.05 || Math.max(0.05, Math.abs(y0) * 0.05);
  (y0 -= pad), (y1 += pad);
  const px = (x: number) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
  const py = (y: number) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  const xt = niceTicks(x0, x1, 6);
  const yt = niceTicks(y0, y1, 5);
  const grid = [
    ...yt.map((v) => `<line class="grid" x1="${m.l}" x2="${W - m.r}" y1="${f1(py(v))}" y2="${f1(py(v))}"/><text class="tick" x="${m.l - 6}" y="${f1(py(v) + 4)}" text-anchor="end">${tickLabel(v, yt)}</text>`),
    ...xt.map((v) => `<text class="tick" x="${f1(px(v))}" y="${H - m.b + 16}" text-anchor="middle">${tickLabel(v, xt)}</text>`),
    `<line class="axis" x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}"/><line class="axis" x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${H - m.b}"/>`,
  ].join('');
  const max = o.maxPoints ?? 400;
  const coordsOf = (pts: Point[]) => pts.map((p) => `${f1(px(p.x))},${f1(py(p.y))}`).join(' ');
  const lines = series.map((s) => {
    const pts = downsample(s.points, max);
    const markers = s.dashed && pts.length <= 60 ? pts.map((p) => raw(`<circle cx="${f1(px(p.x))}" cy="${f1(py(p.y))}" r="3" fill="${s.color}"/>`)) : [];
    // Per-step losses are noisy: the steps stay faint and their moving average carries the colour.
    const smooth = !s.dashed && s.points.length >= SMOOTH_FROM;
    const trend = smooth ? raw(`<polyline class="trend" points="${coordsOf(downsample(movingAverage(s.points), max))}" fill="none" stroke="${s.color}" stroke-width="2.2" stroke-linejoin="round"/>`) : '';
    return html`<g class="series" data-group="${s.group ?? s.name}"><title>${s.name}</title><polyline data-series="${s.name}" data-kind="${s.dashed ? 'held-out' : 'train'}" data-points="${s.points.length}" points="${coordsOf(pts)}" fill="none" stroke="${s.color}" stroke-width="${s.dashed ? 2 : 1.4}"${raw(s.dashed ? ' stroke-dasharray="6 4"' : smooth ? ' stroke-opacity="0.3"' : '')} stroke-linejoin="round"/>${trend}${markers}</g>`;
  });
  return html`<figure class="chart"><svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${o.label}">${raw(grid)}<text class="axis-label" x="${(m.l + W - m.r) / 2}" y="${H - 6}" text-anchor="middle">${o.xLabel}</text><text class="axis-label" transform="translate(14 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${o.yLabel}</text>${lines}</svg>${legend(series)}</figure>`;
}

function legend(series: ChartSeries[]): Html {
  return html`<figcaption class="legend">${series.map((s) => html`<span class="key"><span class="swatch${s.dashed ? ' dashed' : ''}" style="border-color:${s.color}"></span>${s.name}</span>`)}</figcaption>`;
}

interface HeatmapOptions {
  label: string;
  format: (v: number) => string;
  /** Colour range; default: the values' own min and max. */
  scale?: [number, number];
  /** true: the lowest value is the strongest colour (losses); false: the highest (shares). */
  lowIsStrong: boolean;
  /** Colour each row on its own range (relative to the row's best), so one outlier row does not flatten the rest. */
  perRow?: boolean;
  /** Outline the best cell of each row (lowest when lowIsStrong, else highest). */
  markRowBest?: boolean;
}

/** Colour between pale and deep blue, t in [0, 1]. */
function shade(t: number): string {
  const a = [238, 243, 251];
  const b = [31, 78, 154];
  const c = a.map((v, i) => Math.round(v + (b[i]! - v) * Math.min(1, Math.max(0, t))));
  return `rgb(${c.join(',')})`;
}

/** A rows × columns grid of coloured cells with their values; a missing value is a grey dash. */
export function heatmap(rows: string[], cols: string[], value: (row: string, col: string) => number | null | undefined, o: HeatmapOptions): Html {
  const cellW = 92;
  const cellH = 30;
  const left = Math.min(190, Math.max(70, 8 + 7 * Math.max(...rows.map((r) => Math.min(r.length, 24)))));
  const top = 34;
  const W = left + cellW * cols.length + 4;
  const H = top + cellH * rows.length + 4;
  const vals = rows.flatMap((r) => cols.map((c) => value(r, c))).filter(isFiniteNumber);
  const [lo, hi] = o.scale ?? [Math.min(...vals), Math.max(...vals)];
  const head = cols.map((c, j) => html`<text class="col-label" x="${left + cellW * j + cellW / 2}" y="${top - 10}" text-anchor="middle"><title>${c}</title>${clip(c, 12)}</text>`);
  const body = rows.map((r, i) => {
    const rowVals = cols.map((c) => value(r, c));
    const finite = rowVals.filter(isFiniteNumber);
    const best = finite.length ? (o.lowIsStrong ? Math.min(...finite) : Math.max(...finite)) : undefined;
    const [rlo, rhi] = o.perRow && finite.length ? [Math.min(...finite), Math.max(...finite)] : [lo, hi];
    const strength = (v: number) => {
      const t = rhi > rlo ? (v - rlo) / (rhi - rlo) : 1;
      return o.lowIsStrong ? 1 - t : t;
    };
    const y = top + cellH * i;
    const cells = cols.map((c, j) => {
      const v = rowVals[j];
      const x = left + cellW * j;
      if (!isFiniteNumber(v)) {
        return html`<g class="cell"><title>${r} × ${c}: not measured</title><rect x="${x + 1}" y="${y + 1}" width="${cellW - 2}" height="${cellH - 2}" fill="#f2f2f2"/><text x="${x + cellW / 2}" y="${y + cellH / 2 + 4}" text-anchor="middle" fill="#888">—</text></g>`;
      }
      const s = strength(v);
      const mark = o.markRowBest && v === best ? raw(`<rect class="best" x="${x + 2}" y="${y + 2}" width="${cellW - 4}" height="${cellH - 4}" fill="none" stroke="#111" stroke-width="2"/>`) : '';
      return html`<g class="cell"><title>${r} × ${c}: ${o.format(v)}</title><rect x="${x + 1}" y="${y + 1}" width="${cellW - 2}" height="${cellH - 2}" fill="${shade(s)}"/>${mark}<text x="${x + cellW / 2}" y="${y + cellH / 2 + 4}" text-anchor="middle" fill="${s > 0.55 ? '#fff' : '#111'}">${o.format(v)}</text></g>`;
    });
    return html`<g class="row" data-row="${r}"><text class="row-label" x="${left - 8}" y="${y + cellH / 2 + 4}" text-anchor="end"><title>${r}</title>${clip(r, 24)}</text>${cells}</g>`;
  });
  return html`<figure class="chart heatmap"><svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${o.label}">${head}${body}</svg></figure>`;
}

/** Horizontal bars of fractions in [0, 1], one per label. */
export function fractionBars(items: { label: string; value: number | null; color: string }[], label: string): Html {
  const left = Math.min(190, Math.max(70, 8 + 7 * Math.max(0, ...items.map((i) => Math.min(i.label.length, 24)))));
  const barW = 420;
  const rowH = 26;
  const W = left + barW + 60;
  const H = rowH * items.length + 26;
  const grid = [0, 0.25, 0.5, 0.75, 1].map((v) => `<line class="grid" x1="${left + v * barW}" x2="${left + v * barW}" y1="0" y2="${H - 20}"/><text class="tick" x="${left + v * barW}" y="${H - 6}" text-anchor="middle">${v * 100}%</text>`).join('');
  const bars = items.map((it, i) => {
    const y = rowH * i + 4;
    const v = it.value;
    const bar = isFiniteNumber(v)
      ? html`<rect class="bar" data-label="${it.label}" x="${left}" y="${y}" width="${f1(Math.max(1, Math.min(1, v) * barW))}" height="${rowH - 8}" fill="${it.color}"/><text x="${f1(left + Math.min(1, v) * barW + 6)}" y="${y + rowH / 2 + 1}">${(v * 100).toFixed(0)}%</text>`
      : html`<text x="${left + 6}" y="${y + rowH / 2 + 1}" fill="#888">not measured</text>`;
    return html`<g><title>${it.label}</title><text class="row-label" x="${left - 8}" y="${y + rowH / 2 + 1}" text-anchor="end">${clip(it.label, 24)}</text>${bar}</g>`;
  });
  return html`<figure class="chart"><svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${label}">${raw(grid)}${bars}</svg></figure>`;
}
