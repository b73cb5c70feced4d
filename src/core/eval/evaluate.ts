import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { MoaConfig } from '../config/schema';
import { datasetsForTraining } from '../data/compact';
import { loadExpertWeights, usableExperts, workspaceTargets, type ExpertWeights } from '../adapters/store';
import { loadLearnedRouter, readRouterInfo, type LearnedRouter } from '../adapters/router';
import { readBaseModel, resolveBaseModelDir } from '../models/base';
import type { ProductLayout, WorkspaceLayout } from '../paths';
import { OnnxEngine } from '../inference/engine';
import { stackExperts } from '../inference/expertStack';
import { ensureOnnxExport, graphTargets } from '../inference/export';
import { readOnnxModelInfo } from '../inference/modelInfo';
import { listRuns, readRunEvents, runInfo, runStatus } from '../trainer/runs';
import { MoaError, throwIfCancelled } from '../util/errors';
import { writeJsonAtomic } from '../util/atomic';
import { isFiniteNumber } from '../util/json';
import { evenWindows } from './windows';
import { learnedLosses } from './learnedScore';
import { evaluateEmbedded, formatEmbeddedTable, type EmbeddedReport } from './embedded';
import { loadTokenizer } from '../tokenizer/load';
import { formatCompletionTable, type CompletionReport } from './completions';
import { evaluateEditorContext, formatEditorContextTable, type EditorContextReport } from './editorContext';

/** Tokens of a window's own file put before it for the editor-context routing table: with the window's first half, the 448 a 512-token prompt leaves. */
export const EDITOR_CONTEXT_TOKENS = 384;

type PerDomain = Record<string, number | null>;

export interface EvalReport {
  v: 1;
  created: string;
  windows: number;
  seqLen: number;
  domains: string[];
  experts: string[];
  /** Held-out loss (nats/token) of the base model alone. */
  base: PerDomain;
  /** domain → expert → loss: each expert on every domain's held-out data. */
  matrix: Record<string, PerDomain>;
  /** The one-LoRA baseline trained on all domains (when it was trained). */
  mixed: PerDomain | null;
  /** MoA with label routing: the domain's own expert (which is also oracle routing here). */
  label: PerDomain;
  /** MoA with the learned router: routed on each window's first half and held, as completions are. */
  learned: PerDomain | null;
  /**
   * Where `learned` comes from: `onnx`, scored here on the same windows as every other column;
   * `trainer`, the trainer's stage-2 evaluation on its own windows (when the router's experts
   * are not all here to re-score it). Absent in reports written before this field existed.
   */
  learnedSource?: 'onnx' | 'trainer';
  routerAccuracy: PerDomain | null;
  /** Held-out windows each domain was scored on (at most `windows`; fewer for a small domain). */
  windowsPerDomain?: Record<string, number>;
  /** Standard error of each mean, by column name (as `evalColumns` names them) then domain. */
  stderr?: Record<string, PerDomain>;
  /** Domains with too little held-out text for one window: scored on nothing, never on training text. */
  tooLittleHeldOut?: Record<string, number>;
  /** Fenced blocks of each code domain inside the prose domain's text: routing at the cursor, measured. */
  embedded?: EmbeddedReport;
  /** `moa eval --completions`: what users see, at sampled positions of held-out files. */
  completions?: CompletionReport;
  /** Label and learned routing again with each window's file context before it, as the editor's prompt has. */
  editorContext?: EditorContextReport;
}

/** The standard error of the mean of `xs` (null below two values). */
export function standardError(xs: number[]): number | null {
  if (xs.length < 2) return null;
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  const v = xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1);
  return Math.sqrt(v / xs.length);
}

/** The mean of the finite numbers among `xs`; null when there are none. */
export function mean(xs: readonly unknown[]): number | null {
  const v = xs.filter(isFiniteNumber);
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
}

export interface EvalColumn {
  name: string;
  get: (domain: string) => number | null | undefined;
  kind: 'loss' | 'pct';
  /** The standard error of the value, where it was measured. */
  se?: (domain: string) => number | null | undefined;
}

/** The eval table's columns, in order, as `moa eval` prints them and the report draws them. */
export function evalColumns(r: EvalReport): EvalColumn[] {
  const se = (name: string) => (d: string) => r.stderr?.[name]?.[d];
  const cols: EvalColumn[] = [
    { name: 'base', get: (d) => r.base[d], kind: 'loss' },
    ...r.experts.map((e): EvalColumn => ({ name: e, get: (d) => r.matrix[d]?.[e], kind: 'loss' })),
    ...(r.mixed ? [{ name: 'mixed', get: (d) => r.mixed?.[d], kind: 'loss' } satisfies EvalColumn] : []),
    { name: 'MoA label', get: (d) => r.label[d], kind: 'loss' },
    ...(r.learned ? [{ name: 'MoA learned', get: (d) => r.learned?.[d], kind: 'loss' } satisfies EvalColumn] : []),
    ...(r.routerAccuracy ? [{ name: 'router acc', get: (d) => r.routerAccuracy?.[d], kind: 'pct' } satisfies EvalColumn] : []),
  ];
  return cols.map((c) => (c.kind === 'loss' ? { ...c, se: se(c.name) } : c));
}

/** The learned router's held-out loss per domain, from the latest run's stage-2 eval events. */
function learnedFromRuns(layout: WorkspaceLayout): PerDomain | null {
  for (const run of listRuns(layout).reverse()) {
    const evals = readRunEvents(runInfo(layout, run).eventsFile).filter((e) => e.type === 'eval' && e.stage === 'router');
    if (evals.length === 0) continue;
    const out: PerDomain = {};
    for (const e of evals) if (e.type === 'eval') out[e.domain] = e.loss;
    return out;
  }
  return null;
}

/**
 * `moa eval`: on each domain's held-out shard, the loss of the base, of every expert, of the mixed
 * baseline and of MoA routing, all through the ONNX graph that serves completions.
 */
export async function evaluate(
  layout: WorkspaceLayout,
  product: ProductLayout,
  config: MoaConfig,
  python: string,
  opts: { windows: number; seqLen?: number; onLog?: (l: string) => void; signal?: AbortSignal } = { windows: 16 },
): Promise<EvalReport> {
  const manifest = datasetsForTraining(layout);
  if (!manifest) throw new MoaError(`${layout.dataDir}: no datasets yet`, 'Run "moa data" first.');
  const dir = resolveBaseModelDir(config.baseModel, product, layout.root);
  const base = readBaseModel(config.baseModel, dir);
  const targets = graphTargets(workspaceTargets(layout.expertsDir, layout.baselinesDir));
  const exp = await ensureOnnxExport(layout, product, dir, python, opts.onLog, { targets, weights: config.inference.weights }, opts.signal);
  const engine = await OnnxEngine.load(exp.onnxPath, readOnnxModelInfo(exp.infoPath));
  try {
    const experts = usableExperts(layout.expertsDir);
    const weights = new Map<string, ExpertWeights>(experts.map((e) => [e.name, loadExpertWeights(e.dir, e.name, base)]));
    const mixedDir = join(layout.baselinesDir, 'mixed');
    const mixed = existsSync(join(mixedDir, 'adapter_model.safetensors')) ? loadExpertWeights(mixedDir, 'mixed', base) : undefined;
    const seqLen = opts.seqLen ?? config.training.seqLen;
    const routerInfo = readRouterInfo(layout.routerDir);
    let router: LearnedRouter | undefined;
    // Cancelling takes effect between two scorings (each a few batches), so it answers quickly.
    const check = () => throwIfCancelled(opts.signal, 'evaluation', 'The last evaluation is kept.');
    const noExpert = stackExperts(engine.info, []);
    const report: EvalReport = {
      v: 1,
      created: new Date().toISOString(),
      windows: opts.windows,
      seqLen,
      domains: [],
      experts: [...weights.keys()],
      base: {},
      matrix: {},
      mixed: mixed ? {} : null,
      label: {},
      learned: null,
      routerAccuracy: routerInfo?.accuracy ?? null,
    };
    const stacks = new Map([...weights].map(([n, w]) => [n, stackExperts(engine.info, [w])]));
    if (routerInfo?.status === 'ok' && routerInfo.experts.length >= 2 && routerInfo.experts.every((e) => weights.has(e))) {
      router = loadLearnedRouter(layout.routerDir, routerInfo);
      report.learned = {};
      report.learnedSource = 'onnx';
    } else {
      report.learned = learnedFromRuns(layout);
      if (report.learned) report.learnedSource = 'trainer';
    }
    report.windowsPerDomain = {};
    report.stderr = {};
    report.tooLittleHeldOut = {};
    for (const d of manifest.domains) {
      // Held-out text only: a domain without one window of it gets an empty row, never its training text.
      const windows = d.valTokens >= seqLen ? evenWindows(d.valPath, seqLen, opts.windows) : [];
      if (windows.length === 0) {
        if (d.trainTokens > 0) report.tooLittleHeldOut[d.domain] = d.valTokens;
        continue;
      }
      report.domains.push(d.domain);
      report.windowsPerDomain[d.domain] = windows.length;
      const scored = async (column: string, losses: Promise<number[]>): Promise<number> => {
        const per = await losses;
        (report.stderr![column] ??= {})[d.domain] = standardError(per);
        return per.reduce((a, b) => a + b, 0) / per.length;
      };
      check();
      report.base[d.domain] = await scored('base', engine.windowLosses(windows, noExpert, [0]));
      report.matrix[d.domain] = {};
      for (const [name, stack] of stacks) {
        check();
        report.matrix[d.domain]![name] = await scored(name, engine.windowLosses(windows, stack, [1]));
      }
      check();
      if (mixed && report.mixed) report.mixed[d.domain] = await scored('mixed', engine.windowLosses(windows, stackExperts(engine.info, [mixed]), [1]));
      report.label[d.domain] = report.matrix[d.domain]![d.domain] ?? report.base[d.domain]!;
      (report.stderr['MoA label'] ??= {})[d.domain] = report.stderr[weights.has(d.domain) ? d.domain : 'base']?.[d.domain] ?? null;
      if (router && report.learned) {
        report.learned[d.domain] = await scored('MoA learned', learnedLosses(engine, windows, stacks, router, () => [0, Math.floor(seqLen / 2)]).then((r) => r.losses));
      }
    }
    check();
    const tokenizer = loadTokenizer(dir);
    if (router) {
      const ctx = await evaluateEditorContext({ manifest, seqLen, windows: opts.windows, contextTokens: EDITOR_CONTEXT_TOKENS, bos: tokenizer.bosId, engine, stacks, router, signal: opts.signal });
      if (ctx) report.editorContext = ctx;
    }
    check();
    const embedded = await evaluateEmbedded({ config, manifest, tokenizer, engine, stacks, router, samples: opts.windows });
    if (embedded) report.embedded = embedded;
    return report;
  } finally {
    await engine.release();
  }
}

/**
 * Saves the report as .moa/eval.json (which the inspector reads) and beside the latest run, when
 * that run finished: the experts scored are the ones it wrote. A run that is still going, or that
 * ended early, is not what was measured.
 */
export function saveEvalReport(layout: WorkspaceLayout, report: EvalReport): string[] {
  const written = [join(layout.moaDir, 'eval.json')];
  const last = listRuns(layout).pop();
  if (last && runStatus(layout, last) === 'done') written.push(runInfo(layout, last).evalFile);
  for (const f of written) writeJsonAtomic(f, report);
  return written;
}

/** The table `moa eval` prints: one row per domain, then the means. */
export function formatEvalTable(r: EvalReport): string {
  const cols = evalColumns(r);
  const width = Math.max(10, ...cols.map((c) => c.name.length + 2));
  const fmt = (x: number | null | undefined, c: EvalColumn) => (typeof x !== 'number' ? '—' : c.kind === 'pct' ? `${(x * 100).toFixed(0)}%` : x.toFixed(3)).padStart(width);
  const counts = r.windowsPerDomain;
  const lines = [
    `held-out loss (nats/token) on up to ${r.windows} windows of ${r.seqLen} tokens per domain${counts ? ' (n: how many); ± one standard error' : ''}`,
    'domain'.padEnd(14) + (counts ? '   n' : '') + cols.map((c) => c.name.padStart(width)).join(''),
  ];
  const seOf = (c: EvalColumn, d: string) => {
    const v = c.se?.(d);
    return typeof v === 'number' ? `±${v.toFixed(3)}` : '';
  };
  for (const d of r.domains) {
    lines.push(d.padEnd(14) + (counts ? String(counts[d] ?? '').padStart(4) : '') + cols.map((c) => fmt(c.get(d), c)).join(''));
    if (counts && cols.some((c) => seOf(c, d))) lines.push(''.padEnd(18) + cols.map((c) => seOf(c, d).padStart(width)).join(''));
  }
  for (const [d, tokens] of Object.entries(r.tooLittleHeldOut ?? {})) lines.push(`${d.padEnd(14)}${counts ? '   0' : ''}  — too little held-out data (${tokens} tokens, a window is ${r.seqLen}): not scored`);
  lines.push('mean'.padEnd(14) + (counts ? '    ' : '') + cols.map((c) => fmt(mean(r.domains.map((d) => c.get(d))), c)).join(''));
  if (r.learned && r.learnedSource === 'onnx') lines.push('MoA learned: the learned router decides on the first half of each window (from its token n-grams) and holds it, as for a completion.');
  else if (r.learned) lines.push('MoA learned: from the trainer\'s stage-2 evaluation, on its own held-out windows (the router\'s experts are not all here to re-score it).');
  if (r.editorContext) lines.push('', formatEditorContextTable(r.editorContext));
  if (r.embedded) lines.push('', formatEmbeddedTable(r.embedded));
  if (r.completions) lines.push('', formatCompletionTable(r.completions));
  return lines.join('\n');
}
