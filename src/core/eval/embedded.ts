import type { MoaConfig } from '../config/schema';
import { compileDomains } from '../domains/classify';
import type { DatasetManifest } from '../data/shards';
import type { LearnedRouter } from '../adapters/router';
import type { OnnxEngine } from '../inference/engine';
import type { ExpertStack } from '../inference/expertStack';
import { learnedLosses } from './learnedScore';
import type { Tokenizer } from '../tokenizer/types';
import { evenWindows } from './windows';

/** Token lengths of one mixed sample: prose, then a fenced block whose text runs to the cursor, then what follows. */
export const EMBEDDED_SHAPE = { prose: 64, blockBeforeCursor: 32, continuation: 32 };

/** One code domain's fenced blocks inside the prose domain's text, scored after the cursor. */
export interface EmbeddedRow {
  domain: string;
  samples: number;
  /** Mean loss (nats/token) of the block's text after the cursor, per way of routing. */
  loss: Record<EmbeddedRouting, number | null>;
  /** How often the block's own expert served it, per way of routing (label and auto decide by rule). */
  servedByBlockExpert: Record<EmbeddedRouting, number | null>;
}

/**
 * - `file`: label routing, the file's domain (the prose expert) serves the block;
 * - `auto`: the fence's language picks its domain's expert;
 * - `learned-prompt`: the router reads the whole prompt (what learned routing did before it saw blocks);
 * - `learned-block`: the router reads from the opening fence on (learned routing now, and auto for
 *   a block whose language no domain holds).
 */
export type EmbeddedRouting = 'file' | 'auto' | 'learned-prompt' | 'learned-block';
export const EMBEDDED_ROUTINGS: readonly EmbeddedRouting[] = ['file', 'auto', 'learned-prompt', 'learned-block'];

export interface EmbeddedReport {
  prose: string;
  shape: typeof EMBEDDED_SHAPE;
  rows: EmbeddedRow[];
}

export interface EmbeddedInputs {
  config: MoaConfig;
  manifest: DatasetManifest;
  tokenizer: Tokenizer;
  engine: OnnxEngine;
  /** One stack per expert, for fixed routing through `engine`. */
  stacks: Map<string, ExpertStack>;
  router?: LearnedRouter;
  samples: number;
}

/**
 * Mixed files built from held-out text: a stretch of the prose domain (Markdown), an opening fence
 * tagged with a code domain's language, that domain's held-out code up to the cursor, and the code
 * after it, which is what is scored. Undefined when the workspace has no prose domain with an
 * expert, or no code domain beside it.
 */
export async function evaluateEmbedded(x: EmbeddedInputs): Promise<EmbeddedReport | undefined> {
  const domains = compileDomains(x.config.domains);
  const prose = domains.domainOfLanguage('markdown');
  const byName = new Map(x.manifest.domains.map((d) => [d.domain, d]));
  const proseData = prose ? byName.get(prose) : undefined;
  if (!prose || !proseData || !x.stacks.has(prose)) return undefined;
  const { prose: P, blockBeforeCursor: H, continuation: C } = EMBEDDED_SHAPE;
  const bos = x.tokenizer.bosId === null ? [] : [x.tokenizer.bosId];
  const rows: EmbeddedRow[] = [];
  // The prose windows are the same for every block language: read once.
  const proseWindows = evenWindows(proseData.valPath, P, x.samples);
  for (const cfg of x.config.domains) {
    const language = cfg.languages.find((l) => domains.domainOfLanguage(l) === cfg.name);
    const data = byName.get(cfg.name);
    if (cfg.name === prose || !language || !data || !x.stacks.has(cfg.name)) continue;
    const codeWindows = evenWindows(data.valPath, H + C, x.samples);
    const n = Math.min(proseWindows.length, codeWindows.length);
    if (n === 0) continue;
    const fence = Array.from(x.tokenizer.encode(`\n\n\`\`\`${language}\n`));
    const fenceAt = bos.length + P;
    const cursor = fenceAt + fence.length + H;
    const samples = Array.from({ length: n }, (_, i) => Uint32Array.from([...bos, ...proseWindows[i]!, ...fence, ...codeWindows[i]!]));
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
    const score = async (stack: ExpertStack) => mean(await x.engine.windowLosses(samples, stack, [1], { scoreFrom: cursor }));
    const row: EmbeddedRow = {
      domain: cfg.name,
      samples: n,
      loss: { 'file': await score(x.stacks.get(prose)!), 'auto': await score(x.stacks.get(cfg.name)!), 'learned-prompt': null, 'learned-block': null },
      servedByBlockExpert: { 'file': 0, 'auto': 1, 'learned-prompt': null, 'learned-block': null },
    };
    if (x.router) {
      for (const [name, from] of [['learned-prompt', 0], ['learned-block', fenceAt]] as const) {
        // What a completion at the cursor would be routed to: the router reads the text before it.
        const r = await learnedLosses(x.engine, samples, x.stacks, x.router, () => [from, cursor], cursor);
        row.loss[name] = mean(r.losses);
        row.servedByBlockExpert[name] = r.experts.filter((e) => e === cfg.name).length / n;
      }
    }
    rows.push(row);
  }
  return rows.length ? { prose, shape: EMBEDDED_SHAPE, rows } : undefined;
}

/** The table `moa eval` prints under the main one. */
export function formatEmbeddedTable(r: EmbeddedReport): string {
  const w = 16;
  const head = 'block'.padEnd(14) + '   n' + EMBEDDED_ROUTINGS.map((k) => k.padStart(w)).join('');
  const cell = (loss: number | null, served: number | null) => (loss === null ? '—' : `${loss.toFixed(3)} ${served === null ? '' : `${Math.round(served * 100)}%`}`).padStart(w);
  const lines = [
    `fenced blocks in ${r.prose} text (${r.shape.prose} tokens of prose, a fence, ${r.shape.blockBeforeCursor} tokens of the block's code, then the cursor): loss of the next ${r.shape.continuation} tokens, and how often the block's own expert served them`,
    head,
    ...r.rows.map((row) => row.domain.padEnd(14) + String(row.samples).padStart(4) + EMBEDDED_ROUTINGS.map((k) => cell(row.loss[k], row.servedByBlockExpert[k])).join('')),
  ];
  return lines.join('\n');
}
