import type { DatasetManifest } from '../data/shards';
import type { LearnedRouter } from '../adapters/router';
import type { OnnxEngine } from '../inference/engine';
import type { ExpertStack } from '../inference/expertStack';
import { learnedLosses } from './learnedScore';
import { evenStarts, readShard } from './windows';

/**
 * The loss table's learned column decides on the first half of a 128-token window: 64 tokens,
 * 64 bytes with a byte-level base. A completion in the editor sends up to 512 tokens of the file
 * before the cursor, and the router reads all of them. This scores the same windows again with
 * the file's text before each window (up to `contextTokens`, never across the file's start) in
 * front: label routing and learned routing, on the same tokens as the main table, with the router
 * reading the context and the window's first half (trainer/ROUTER.md, experiment 6).
 */
export interface EditorContextReport {
  contextTokens: number;
  /** Mean context each domain's windows actually had (files start where they start). */
  meanContext: Record<string, number>;
  label: Record<string, number>;
  learned: Record<string, number>;
  /** How often the router chose the domain's own expert. */
  accuracy: Record<string, number>;
}

/**
 * The windows `evenWindows` takes, each with up to `context` tokens of its file before it (back to
 * the file's BOS, which every file in a shard starts with). `ctx`: where the window starts in `row`.
 */
export function windowsWithContext(shardPath: string, len: number, count: number, context: number, bos: number | null): { row: Uint32Array; ctx: number }[] {
  const tokens = readShard(shardPath);
  return evenStarts(tokens.length, len, count).map((at) => {
    let from = Math.max(0, at - context);
    if (bos !== null) {
      for (let j = at; j > from; j--) {
        if (tokens[j] === bos) {
          from = j;
          break;
        }
      }
    }
    return { row: tokens.slice(from, at + len), ctx: at - from };
  });
}

export interface EditorContextInputs {
  manifest: DatasetManifest;
  seqLen: number;
  windows: number;
  contextTokens: number;
  bos: number | null;
  engine: OnnxEngine;
  stacks: Map<string, ExpertStack>;
  router: LearnedRouter;
  signal?: AbortSignal;
}

export async function evaluateEditorContext(x: EditorContextInputs): Promise<EditorContextReport | undefined> {
  const report: EditorContextReport = { contextTokens: x.contextTokens, meanContext: {}, label: {}, learned: {}, accuracy: {} };
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  for (const d of x.manifest.domains) {
    const own = x.stacks.get(d.domain);
    if (!own || !x.router.experts.includes(d.domain) || d.valTokens < x.seqLen) continue;
    const rows = windowsWithContext(d.valPath, x.seqLen, x.windows, x.contextTokens, x.bos);
    if (rows.length === 0) continue;
    const label: number[] = [];
    const learned: number[] = [];
    let right = 0;
    for (const { row, ctx } of rows) {
      if (x.signal?.aborted) return undefined;
      // The window's tokens after its first, as the main table scores them.
      const scoreFrom = ctx + 1;
      label.push(...(await x.engine.windowLosses([row], own, [1], { scoreFrom })));
      const r = await learnedLosses(x.engine, [row], x.stacks, x.router, () => [0, ctx + Math.floor(x.seqLen / 2)], scoreFrom);
      learned.push(...r.losses);
      if (r.experts[0] === d.domain) right++;
    }
    report.meanContext[d.domain] = mean(rows.map((r) => r.ctx));
    report.label[d.domain] = mean(label);
    report.learned[d.domain] = mean(learned);
    report.accuracy[d.domain] = right / rows.length;
  }
  return Object.keys(report.label).length ? report : undefined;
}

export function formatEditorContextTable(r: EditorContextReport): string {
  const domains = Object.keys(r.label);
  const avg = (rec: Record<string, number>) => domains.reduce((s, d) => s + rec[d]!, 0) / domains.length;
  const line = (name: string, ctx: string, label: number, learned: number, acc: number) =>
    `${name.padEnd(14)}${ctx.padStart(8)}${label.toFixed(3).padStart(12)}${learned.toFixed(3).padStart(14)}${`${Math.round(acc * 100)}%`.padStart(12)}`;
  return [
    `the same windows with up to ${r.contextTokens} tokens of their file before them, as a completion's prompt has (the learned router reads that context and the window's first half; same tokens scored)`,
    `${'domain'.padEnd(14)}${'context'.padStart(8)}${'MoA label'.padStart(12)}${'MoA learned'.padStart(14)}${'router acc'.padStart(12)}`,
    ...domains.map((d) => line(d, r.meanContext[d]!.toFixed(0), r.label[d]!, r.learned[d]!, r.accuracy[d]!)),
    line('mean', '', avg(r.label), avg(r.learned), avg(r.accuracy)),
  ].join('\n');
}
