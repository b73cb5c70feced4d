/**
 * Prompt lookup drafting: code repeats itself (identifiers, call shapes, the line above), so the
 * tokens that followed the last occurrence of the current suffix are a cheap guess at what comes
 * next. The engine checks the guess in one pass over all drafted tokens and keeps the prefix the
 * model itself would have chosen, so greedy output is unchanged; only the number of passes drops.
 */

/** Longest and shortest suffix (in tokens) looked up; longer matches are tried first. */
export const LOOKUP_NGRAM_MAX = 8;
export const LOOKUP_NGRAM_MIN = 3;

/**
 * Up to `max` tokens that followed the most recent earlier occurrence of the longest suffix of
 * `context` (between LOOKUP_NGRAM_MAX and LOOKUP_NGRAM_MIN tokens) found earlier in `context`;
 * empty when there is none.
 */
export function lookupDraft(context: readonly number[], max: number, ngramMax = LOOKUP_NGRAM_MAX, ngramMin = LOOKUP_NGRAM_MIN): number[] {
  const len = context.length;
  if (max <= 0) return [];
  for (let n = Math.min(ngramMax, len - 1); n >= ngramMin; n--) {
    const start = len - n;
    // Latest occurrence first: the nearest repetition is the likeliest to continue the same way.
    for (let i = start - 1; i >= 0; i--) {
      let k = 0;
      while (k < n && context[i + k] === context[start + k]) k++;
      if (k === n) {
        const from = i + n;
        return context.slice(from, Math.min(from + max, len));
      }
    }
  }
  return [];
}
