import { MoaError } from '../util/errors';

/** A small seeded PRNG (mulberry32): sampling is reproducible for a given seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function argmax(logits: ArrayLike<number>, begin = 0, end = logits.length): number {
  let best = begin;
  for (let i = begin + 1; i < end; i++) if (logits[i]! > logits[best]!) best = i;
  return best - begin;
}

export interface SamplingOptions {
  /** 0 = greedy. */
  temperature: number;
  topP: number;
}

/** Thrown when the model's output is not numbers: a corrupt expert or base, never text to show. */
export class NonFiniteLogits extends MoaError {
  constructor(index: number, value: number) {
    super(`the model produced a non-finite logit (${value} at token ${index}): an attached expert or the base weights hold NaN or infinite values`, 'Check the experts with "moa experts list" and "moa experts inspect NAME"; detach or retrain the broken one.');
  }
}

/** Picks the next token from one row of logits: greedy, or temperature + nucleus (top-p) sampling. */
export function sampleToken(row: ArrayLike<number>, opts: SamplingOptions, random: () => number): number {
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    // -Infinity is a masked token, which is fine; NaN and +Infinity mean the numbers broke.
    if (v !== v || v === Infinity) throw new NonFiniteLogits(i, v);
  }
  if (opts.temperature <= 0) return argmax(row);
  const n = row.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (row[i]! > max) max = row[i]!;
  const probs = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    probs[i] = Math.exp((row[i]! - max) / opts.temperature);
    sum += probs[i]!;
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => probs[b]! - probs[a]!);
  const cutoff = Math.min(1, Math.max(opts.topP, 0)) * sum;
  let kept = 0;
  let keptSum = 0;
  while (kept < n && (keptSum < cutoff || kept === 0)) keptSum += probs[order[kept++]!]!;
  let r = random() * keptSum;
  for (let k = 0; k < kept; k++) {
    r -= probs[order[k]!]!;
    if (r <= 0) return order[k]!;
  }
  return order[kept - 1]!;
}
