import { columnName, type CompletionReport, type CompletionScores } from '../eval/completions';
import { EMBEDDED_ROUTINGS, type EmbeddedReport } from '../eval/embedded';
import type { EditorContextReport } from '../eval/editorContext';
import { html, raw, type Html } from './html';

const pct = (x: number | null | undefined) => (typeof x === 'number' ? `${Math.round(x * 100)}%` : '—');

/** `moa eval --completions` in the report: what users see, per domain and way of serving. */
export function completionTable(r: CompletionReport | undefined): Html {
  if (!r) return html`<h3>Completions</h3><p class="na">completion scores not available: run <code>moa eval --completions</code></p>`;
  const cell = (s: CompletionScores | undefined, best: number) =>
    s ? html`<td${raw(s.editSimilarity === best ? ' class="best"' : '')}>${pct(s.exact)} · ${s.editSimilarity.toFixed(2)} · ${s.acceptedChars.toFixed(1)}/${s.targetChars.toFixed(0)}<span class="se sub">own ${pct(s.servedByOwnExpert)}</span><span class="se sub">${Math.round(s.firstTokenP50Ms)} · ${Math.round(s.p50Ms)}/${Math.round(s.p95Ms)} ms</span></td>` : html`<td>—</td>`;
  const rows = Object.entries(r.rows).map(([d, row]) => {
    const best = Math.max(...r.columns.map((c) => row[c]?.editSimilarity ?? -1));
    return html`<tr data-domain="${d}"><td>${d}</td><td class="n">${row[r.columns[0]!]?.n ?? ''}</td>${r.columns.map((c) => cell(row[c], best))}</tr>`;
  });
  return html`<h3>Completions</h3>
<p class="muted">At ${r.positionsPerDomain} positions per domain in held-out files (half line starts, half mid-line, seed ${r.seed}), completed greedily to the end of the line as the editor does: exact match · edit similarity · characters right from the start (of the line’s), under it, how often the domain’s own expert served (for the learned router: its accuracy at the editor’s prompt length), and latency: the first token’s p50 · the whole line’s p50/p95. Bold: the best edit similarity of the row.</p>
<div class="table-wrap"><table class="completions"><thead><tr><th>domain</th><th>n</th>${r.columns.map((c) => html`<th>${columnName(c)}</th>`)}</tr></thead><tbody>${rows}</tbody></table></div>`;
}

/** Fenced blocks inside prose: the loss after the cursor, and how often the block's own expert served it. */
export function embeddedTable(r: EmbeddedReport | undefined): Html {
  if (!r) return html``;
  const rows = r.rows.map((row) => {
    const best = Math.min(...EMBEDDED_ROUTINGS.map((k) => row.loss[k] ?? Infinity));
    return html`<tr data-domain="${row.domain}"><td>${row.domain}</td><td class="n">${row.samples}</td>${EMBEDDED_ROUTINGS.map((k) => {
      const v = row.loss[k];
      return html`<td${raw(v === best ? ' class="best"' : '')}>${typeof v === 'number' ? v.toFixed(3) : '—'}<span class="se"> ${pct(row.servedByBlockExpert[k])}</span></td>`;
    })}</tr>`;
  });
  return html`<h3>Routing at the cursor</h3>
<p class="muted">Fenced blocks of each code domain inside ${r.prose} text (${r.shape.prose} tokens of prose, the fence, ${r.shape.blockBeforeCursor} tokens of code, then the cursor): held-out loss of the next ${r.shape.continuation} tokens, and how often the block’s own expert served them. file: label routing by the file; auto: the fence’s language; learned-prompt / learned-block: the router reading the whole prompt / the block.</p>
<div class="table-wrap"><table class="embedded"><thead><tr><th>block</th><th>n</th>${EMBEDDED_ROUTINGS.map((k) => html`<th>${k}</th>`)}</tr></thead><tbody>${rows}</tbody></table></div>`;
}

/** Label and learned routing with each window's file context before it, as a completion's prompt has. */
export function editorContextTable(r: EditorContextReport | undefined): Html {
  if (!r) return html``;
  const domains = Object.keys(r.label);
  const rows = domains.map((d) => html`<tr data-domain="${d}"><td>${d}</td><td class="n">${r.meanContext[d]!.toFixed(0)}</td><td>${r.label[d]!.toFixed(3)}</td><td>${r.learned[d]!.toFixed(3)}</td><td>${pct(r.accuracy[d])}</td></tr>`);
  const avg = (rec: Record<string, number>) => domains.reduce((s, d) => s + rec[d]!, 0) / domains.length;
  return html`<h3>Routing with the editor’s context</h3>
<p class="muted">The same held-out windows with up to ${r.contextTokens} tokens of their own file before them, as a completion’s prompt has: held-out loss of the same tokens under label routing and under the learned router reading that context and the window’s first half, and how often the router chose the domain’s own expert.</p>
<div class="table-wrap"><table class="context"><thead><tr><th>domain</th><th>context</th><th>MoA label</th><th>MoA learned</th><th>router acc</th></tr></thead><tbody>${rows}<tr class="mean"><td>mean</td><td></td><td>${avg(r.label).toFixed(3)}</td><td>${avg(r.learned).toFixed(3)}</td><td>${pct(avg(r.accuracy))}</td></tr></tbody></table></div>`;
}
