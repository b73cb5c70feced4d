import type { LearnedRouter } from '../adapters/router';
import type { OnnxEngine } from '../inference/engine';
import type { ExpertStack } from '../inference/expertStack';
import { learnedExpert } from '../routing/learned';

/**
 * Each window's loss under the learned router, as a completion would be served: the router reads
 * `span(row)` (its prompt) and the expert it picks scores the row alone. Also returns the pick per
 * row, so accuracy comes from the same decisions. Rows of one length are scored in batches.
 */
export async function learnedLosses(
  engine: OnnxEngine,
  rows: Uint32Array[],
  stacks: Map<string, ExpertStack>,
  router: LearnedRouter,
  span: (row: Uint32Array) => [from: number, end: number],
  scoreFrom?: number,
): Promise<{ losses: number[]; experts: string[] }> {
  const experts = rows.map((row) => learnedExpert(router, row.subarray(...span(row))));
  const losses = new Array<number>(rows.length);
  for (const name of new Set(experts)) {
    const mine = rows.flatMap((_, i) => (experts[i] === name ? [i] : []));
    const per = await engine.windowLosses(mine.map((i) => rows[i]!), stacks.get(name)!, [1], { scoreFrom });
    mine.forEach((i, k) => (losses[i] = per[k]!));
  }
  return { losses, experts };
}
