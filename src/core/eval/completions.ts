import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MoaConfig, RoutingMode } from '../config/schema';
import { contentHash, readDomainIndex } from '../data/fileIndex';
import { editDistance } from '../domains/languages';
import { CompletionService, DEFAULT_COMPLETE, type CompleteOptions } from '../inference/service';
import type { ProductLayout, WorkspaceLayout } from '../paths';
import { throwIfCancelled } from '../util/errors';
import { percentile } from '../util/stats';
import { seededRandom } from '../inference/sampling';
import { resolveBaseModelDir } from '../models/base';
import { baseFim } from '../trainer/train';

/** One place to complete at: a held-out file, the offset of the cursor, the rest of its line. */
export interface CompletionPosition {
  relPath: string;
  offset: number;
  kind: 'line-start' | 'mid-line';
  target: string;
}

/** How a column of the completion table is served. `label` is each domain's own expert (held-out files are in their domain). */
export type CompletionColumn = 'base' | 'label' | 'label-prefix-only' | 'mixed' | 'learned' | 'auto';

export interface CompletionScores {
  n: number;
  /** Share of positions where the completion is the rest of the line exactly (trailing spaces aside). */
  exact: number;
  /** Mean of 1 − edit distance / longer length, per position. */
  editSimilarity: number;
  /** Mean characters of the rest of the line the completion got right from its start (what accepting it keeps). */
  acceptedChars: number;
  /** Mean characters of the rest of the line, for scale. */
  targetChars: number;
  p50Ms: number;
  p95Ms: number;
  /** Median time to the first token (the prompt's prefill, routing included). */
  firstTokenP50Ms: number;
  /** Share of positions served by the domain's own expert first (for the learned router: its accuracy at editor-length prompts). */
  servedByOwnExpert: number;
}

export interface CompletionReport {
  seed: number;
  positionsPerDomain: number;
  maxNewTokens: number;
  columns: CompletionColumn[];
  /** domain → column → scores. */
  rows: Record<string, Partial<Record<CompletionColumn, CompletionScores>>>;
}

/**
 * Candidate cursors in one file's text: the start of each non-blank line after the first (its
 * indentation typed), and a point inside each line with a word before and text after it. The
 * target is the rest of the line, never empty.
 */
export function candidatePositions(relPath: string, text: string): CompletionPosition[] {
  const out: CompletionPosition[] = [];
  let start = 0;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    const indent = line.length - line.trimStart().length;
    if (start > 0 && line.trim().length >= 4) out.push({ relPath, offset: start + indent, kind: 'line-start', target: line.slice(indent) });
    // Mid-line: after a word boundary, at least 4 characters in and 4 before the end.
    const mids: number[] = [];
    for (let i = indent + 4; i <= line.length - 4; i++) if (/\W/.test(line[i - 1]!) && /\S/.test(line[i]!)) mids.push(i);
    if (mids.length) {
      const at = mids[Math.floor(mids.length / 2)]!;
      out.push({ relPath, offset: start + at, kind: 'mid-line', target: line.slice(at) });
    }
    start += raw.length + 1;
  }
  return out.filter((p) => p.target.trim().length > 0);
}

/** `count` positions over a domain's held-out files, half at line starts and half mid-line, drawn with `random`. */
export function samplePositions(files: { relPath: string; text: string }[], count: number, random: () => number): CompletionPosition[] {
  const all = files.flatMap((f) => candidatePositions(f.relPath, f.text));
  const pick = (kind: CompletionPosition['kind'], n: number) => {
    const pool = all.filter((p) => p.kind === kind);
    // A partial Fisher-Yates shuffle: n distinct positions.
    for (let i = 0; i < Math.min(n, pool.length); i++) {
      const j = i + Math.floor(random() * (pool.length - i));
      [pool[i], pool[j]] = [pool[j]!, pool[i]!];
    }
    return pool.slice(0, n);
  };
  const starts = pick('line-start', Math.ceil(count / 2));
  return [...starts, ...pick('mid-line', count - starts.length)];
}

/** The held-out files of a domain as they were when the dataset was built (a changed file is skipped). */
export function heldOutFiles(layout: WorkspaceLayout, domain: string): { relPath: string; text: string }[] {
  const index = readDomainIndex(layout, domain);
  if (!index) return [];
  const out: { relPath: string; text: string }[] = [];
  for (const [relPath, f] of Object.entries(index.files).sort(([a], [b]) => (a < b ? -1 : 1))) {
    // Notebook parts (`x.ipynb#code.py`) are not files an editor completes in.
    if (f.s !== 1 || relPath.includes('#')) continue;
    const abs = join(layout.root, relPath);
    if (!existsSync(abs)) continue;
    const bytes = readFileSync(abs);
    if (bytes.length !== f.b || contentHash(bytes) !== f.h) continue;
    out.push({ relPath, text: bytes.toString('utf8') });
  }
  return out;
}

/** Scores of one column's completions against the rests of their lines. */
export function scoreCompletions(pairs: { predicted: string; target: string; ms: number; firstMs?: number; own?: boolean }[]): CompletionScores {
  const n = pairs.length;
  let exact = 0;
  let sim = 0;
  let accepted = 0;
  let chars = 0;
  for (const { predicted, target } of pairs) {
    const p = predicted.trimEnd();
    const t = target.trimEnd();
    if (p === t) exact++;
    const longest = Math.max(p.length, t.length);
    sim += longest === 0 ? 1 : 1 - editDistance(p, t) / longest;
    let k = 0;
    while (k < p.length && k < t.length && p[k] === t[k]) k++;
    accepted += k;
    chars += t.length;
  }
  const ms = pairs.map((x) => x.ms);
  const d = Math.max(1, n);
  const own = pairs.filter((x) => x.own).length / d;
  return { n, exact: exact / d, editSimilarity: sim / d, acceptedChars: accepted / d, targetChars: chars / d, p50Ms: percentile(ms, 0.5), p95Ms: percentile(ms, 0.95), firstTokenP50Ms: percentile(pairs.map((x) => x.firstMs ?? x.ms), 0.5), servedByOwnExpert: own };
}

export interface CompletionEvalOptions {
  positions: number;
  seed: number;
  maxNewTokens?: number;
  onLog?: (l: string) => void;
  signal?: AbortSignal;
}

/**
 * `moa eval --completions`: at sampled positions of each domain's held-out files, complete to the
 * end of the line as the editor does (greedy, the same prompt budget), under each way of serving,
 * and compare with what the file says.
 */
export async function evaluateCompletions(
  layout: WorkspaceLayout,
  product: ProductLayout,
  config: MoaConfig,
  python: string,
  domains: string[],
  opts: CompletionEvalOptions,
): Promise<CompletionReport> {
  const maxNewTokens = opts.maxNewTokens ?? 48;
  const withMode = (mode: RoutingMode): MoaConfig => ({ ...config, routing: { ...config.routing, mode } });
  const mixedDir = join(layout.baselinesDir, 'mixed');
  // A base with FIM tokens sees the text after the cursor; the same expert with a prefix-only prompt shows what that is worth.
  const fim = baseFim(resolveBaseModelDir(config.baseModel, product, layout.root)) !== null;
  const columns: CompletionColumn[] = ['base', 'label', ...(fim ? ['label-prefix-only' as const] : []), ...(existsSync(join(mixedDir, 'adapter_model.safetensors')) ? ['mixed' as const] : []), 'learned', 'auto'];
  const services = new Map<CompletionColumn, CompletionService>();
  const serviceFor = (c: CompletionColumn) => {
    let s = services.get(c);
    if (!s) {
      const mode: RoutingMode = c === 'base' ? 'off' : c === 'learned' ? 'learned' : c === 'auto' ? 'auto' : 'label';
      // label and its prefix-only twin share one service (one model, one set of experts).
      if (c === 'label-prefix-only') return serviceFor('label');
      s = new CompletionService(layout, product, withMode(mode), python, opts.onLog);
      services.set(c, s);
    }
    return s;
  };
  const report: CompletionReport = { seed: opts.seed, positionsPerDomain: opts.positions, maxNewTokens, columns, rows: {} };
  try {
    for (const domain of domains) {
      const files = heldOutFiles(layout, domain);
      const positions = samplePositions(files, opts.positions, seededRandom(opts.seed));
      if (positions.length === 0) continue;
      const texts = new Map(files.map((f) => [f.relPath, f.text]));
      const row: CompletionReport['rows'][string] = {};
      for (const column of columns) {
        const pairs: { predicted: string; target: string; ms: number; firstMs: number; own: boolean }[] = [];
        for (const p of positions) {
          throwIfCancelled(opts.signal, 'evaluation', 'The last evaluation is kept.');
          const text = texts.get(p.relPath)!;
          const lineEnd = text.indexOf('\n', p.offset);
          const suffix = lineEnd < 0 ? '' : text.slice(lineEnd);
          const o: CompleteOptions = { ...DEFAULT_COMPLETE, maxNewTokens, stop: 'line', ...(column === 'mixed' ? { adapterDir: mixedDir } : {}), ...(column === 'label-prefix-only' ? { prefixOnly: true } : {}) };
          const c = await serviceFor(column).complete(p.relPath, text.slice(0, p.offset), o, suffix);
          pairs.push({ predicted: c.text, target: p.target, ms: c.totalMs, firstMs: c.prefillMs, own: c.route.experts[0]?.name === domain });
        }
        row[column] = scoreCompletions(pairs);
      }
      report.rows[domain] = row;
    }
  } finally {
    for (const s of services.values()) await s.dispose();
  }
  return report;
}

/** A column's heading, as the tables print it. */
export function columnName(c: CompletionColumn): string {
  return c === 'label' ? 'label (own expert)' : c === 'label-prefix-only' ? 'label, prefix only' : c;
}

/** The completion table: exact match, edit similarity, accepted characters and latency per column. */
export function formatCompletionTable(r: CompletionReport): string {
  const w = 24;
  const lines = [
    `completions to the end of the line at ${r.positionsPerDomain} held-out positions per domain (half line starts, half mid-line; seed ${r.seed}): exact match · edit similarity · accepted characters (of the line's); then how often the domain's own expert served · first token p50 ms · whole line p50/p95 ms`,
    'domain'.padEnd(14) + r.columns.map((c) => columnName(c).padStart(w)).join(''),
  ];
  const cell = (s: CompletionScores | undefined) => (s ? `${Math.round(s.exact * 100)}% ${s.editSimilarity.toFixed(2)} ${s.acceptedChars.toFixed(1)}/${s.targetChars.toFixed(0)}` : '—').padStart(w);
  const ms = (s: CompletionScores | undefined) => (s ? `own ${Math.round(s.servedByOwnExpert * 100)}% · ${Math.round(s.firstTokenP50Ms)} · ${Math.round(s.p50Ms)}/${Math.round(s.p95Ms)}` : '').padStart(w);
  for (const [d, row] of Object.entries(r.rows)) {
    lines.push(d.padEnd(14) + r.columns.map((c) => cell(row[c])).join(''));
    lines.push(''.padEnd(14) + r.columns.map((c) => ms(row[c])).join(''));
  }
  const domains = Object.values(r.rows);
  const meanOf = (c: CompletionColumn, f: (s: CompletionScores) => number) => {
    const xs = domains.map((row) => row[c]).filter((s): s is CompletionScores => !!s).map(f);
    return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : undefined;
  };
  lines.push('mean'.padEnd(14) + r.columns.map((c) => {
    const e = meanOf(c, (s) => s.exact);
    return (e === undefined ? '—' : `${Math.round(e * 100)}% ${meanOf(c, (s) => s.editSimilarity)!.toFixed(2)} ${meanOf(c, (s) => s.acceptedChars)!.toFixed(1)}/${meanOf(c, (s) => s.targetChars)!.toFixed(0)}`).padStart(w);
  }).join(''));
  return lines.join('\n');
}
