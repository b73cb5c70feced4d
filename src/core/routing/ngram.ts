/**
 * The learned router's decision when router.json says `decision: "ngram"`: a bag of hashed token
 * n-grams of the prompt, one linear layer (trainer/moa_trainer/ngram_router.py fits it; ROUTER.md,
 * experiment 7, says why it replaced the per-layer routers' own choice). The hash must be the
 * trainer's bit for bit: 32-bit FNV-1a over the order, then each id as one word, then h ^ (h >>> 16).
 */
export const NGRAM_HASH = 'fnv1a32-order-ids-xs16';
export const NGRAM_ORDERS = [1, 2, 3, 4] as const;

export interface NgramTable {
  /** A power of two. */
  buckets: number;
  /** [buckets, experts] and [experts]. */
  weight: Float32Array;
  bias: Float32Array;
  experts: number;
}

const fnv = (h: number, word: number): number => Math.imul(h ^ word, 16777619) >>> 0;

/** The bucket of every n-gram of `ids`, orders 1 to 4 one after another. */
export function gramBuckets(ids: ArrayLike<number>, buckets: number): number[] {
  const out: number[] = [];
  for (const k of NGRAM_ORDERS) {
    for (let i = 0; i + k <= ids.length; i++) {
      let h = fnv(2166136261, k);
      for (let j = 0; j < k; j++) h = fnv(h, ids[i + j]!);
      out.push(((h ^ (h >>> 16)) >>> 0) & (buckets - 1));
    }
  }
  return out;
}

/** The expert the table picks for a prompt: argmax of the mean of its n-grams' rows plus the bias. */
export function ngramExpert(table: NgramTable, ids: ArrayLike<number>): number {
  const E = table.experts;
  const sum = new Float64Array(E);
  const grams = gramBuckets(ids, table.buckets);
  for (const b of grams) for (let e = 0; e < E; e++) sum[e]! += table.weight[b * E + e]!;
  let best = 0;
  let bestScore = -Infinity;
  for (let e = 0; e < E; e++) {
    const score = (grams.length ? sum[e]! / grams.length : 0) + table.bias[e]!;
    if (score > bestScore) [best, bestScore] = [e, score];
  }
  return best;
}
