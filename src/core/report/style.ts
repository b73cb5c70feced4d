/** The report's only stylesheet, inlined: the file must open anywhere with nothing beside it. */
export const REPORT_CSS = `
:root { color-scheme: light; --fg: #1d232b; --muted: #5d6875; --line: #d9dee5; --bg: #fff; --panel: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg); background: var(--bg); }
main { max-width: 1040px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 36px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 20px 0 6px; }
p { margin: 6px 0; }
.muted, .source { color: var(--muted); }
.source { font-size: 12px; }
code { font: 12.5px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--panel); padding: 1px 4px; border-radius: 3px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 12px 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.headline { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.headline div { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 150px; }
.headline b { display: block; font-size: 20px; }
.na { color: #8a5a00; background: #fff8e6; border: 1px solid #f0dca8; border-radius: 4px; padding: 8px 12px; }
.problems li { color: #a4262c; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead th { background: var(--panel); font-weight: 600; }
tfoot td { font-weight: 600; border-top: 2px solid var(--line); }
td.best { font-weight: 700; background: #e6f0ff; }
td .se { color: var(--muted); font-weight: 400; font-size: 11.5px; }
td .sub { display: block; }
td.n { color: var(--muted); }
/* Up to eight serving columns (a FIM base adds the prefix-only one): headers wrap, cells pack tighter. */
table.completions th { white-space: normal; }
table.completions { font-size: 0.93em; }
table.completions th, table.completions td { padding: 4px 5px; }
tr.unscored td { color: var(--muted); text-align: left; }
.isolate { font-size: 12.5px; display: flex; flex-wrap: wrap; gap: 2px 12px; align-items: center; }
.isolate label { cursor: pointer; }
.table-wrap { overflow-x: auto; }
figure.chart { margin: 8px 0 16px; }
figure.chart svg { max-width: 100%; height: auto; font-size: 11px; }
svg .grid { stroke: #eceff3; stroke-width: 1; }
svg .axis { stroke: #9aa4af; stroke-width: 1; }
svg .tick, svg .axis-label { fill: var(--muted); }
svg .row-label, svg .col-label { fill: var(--fg); font-size: 12px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 12.5px; margin-top: 4px; }
.legend .key { display: inline-flex; align-items: center; gap: 6px; }
.legend .swatch { display: inline-block; width: 22px; height: 0; border-top: 3px solid; }
.legend .swatch.dashed { border-top-style: dashed; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
@media print { main { padding: 0; } h2 { break-after: avoid; } figure { break-inside: avoid; } }
`;
