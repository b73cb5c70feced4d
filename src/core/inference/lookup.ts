/**
 * Prompt lookup drafting: code repeats itself (identifiers, call shapes, the line above), so the
 * tokens that followed the last occurrence of the current suffix are a cheap guess at what comes
 * next. The engine checks the guess in one pass over all drafted tokens and keeps the prefix the
 * model itself would have chosen, so greedy output is unchanged; only the number of passes drops.
 */

/** Longest and shortest suffix (in tokens) looked up; longer matches are tried first. */
const LOOKUP_NGRAM_MAX = 8;
const LOOKUP_NGRAM_MIN = 3;

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

/**
 * The tokens one checking pass yields: `pick(j)` is the model's choice after the input and the
 * first j drafted tokens. Picks continue while they agree with the draft; the first that differs
 * (or the one after a fully kept draft) ends the list, so it holds kept drafts + 1 tokens.
 */
export function verifyDraft(draft: readonly number[], pick: (j: number) => number): number[] {
  const picks: number[] = [];
  for (let j = 0; j <= draft.length; j++) {
    picks.push(pick(j));
    if (j === draft.length || picks[j] !== draft[j]) break;
  }
  return picks;
}
