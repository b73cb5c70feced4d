import type { LearnedRouter } from '../adapters/router';
import type { Tokenizer } from '../tokenizer/types';
import { ngramExpert } from './ngram';
import type { RouteDecision } from './resolve';

/** Reading fewer tokens than this, the router is guessing (bench/router_probe.py: 44 % at 16 bytes); it reads further back. */
const MIN_ROUTE_TOKENS = 32;

/** The prefix-only prompt the router reads: `buildPrompt` with no suffix and no FIM layout. */
type PrefixPrompt = { ids: Uint32Array; prefixTokens: number };

/**
 * Where in a prompt the router starts reading, for a block starting at `from` in `prefix`: the
 * block's tokens (at least MIN_ROUTE_TOKENS) at the prompt's end.
 */
export function routeStart(tokenizer: Tokenizer, prompt: PrefixPrompt, prefix: string, from: number): number {
  const start = prompt.ids.length - prompt.prefixTokens;
  // Longer than the prompt can hold: the whole prompt is the block.
  if ((prefix.length - from) > 8 * prompt.prefixTokens) return start;
  const blockTokens = tokenizer.encode(prefix.slice(from)).length;
  return Math.max(start, prompt.ids.length - Math.max(MIN_ROUTE_TOKENS, blockTokens));
}

/** The expert the learned router's n-gram table picks for the tokens it reads. */
export function learnedExpert(router: LearnedRouter, ids: ArrayLike<number>): string {
  return router.experts[ngramExpert(router.table, ids)]!;
}

/**
 * A route the learned router decides (`byRouter`), decided on the tokens it reads: the expert its
 * n-gram table picks serves the request alone. This runs before any model pass and needs none.
 */
export function learnedRoute(route: RouteDecision, router: LearnedRouter, ids: ArrayLike<number>): RouteDecision {
  const name = learnedExpert(router, ids);
  // Keep why the router decides (a file in no domain, a block), without the "will choose" clause.
  const why = route.reason.replace(/,? ?the learned router chooses.*$/, '').trim();
  const decided = `learned router (token n-grams of ${ids.length} tokens): ${name}`;
  return { ...route, experts: [{ name, weight: 1 }], reason: why ? `${why} the learned router decided: ${decided}` : decided };
}

/** `learnedRoute` on a built prompt: from the block's start when the route has one, else all of it. */
export function learnedRouteOnPrompt(route: RouteDecision, router: LearnedRouter, tokenizer: Tokenizer, prompt: PrefixPrompt, prefix: string): RouteDecision {
  const from = route.routeFrom === undefined ? 0 : Math.min(prompt.ids.length - 1, routeStart(tokenizer, prompt, prefix, route.routeFrom));
  return learnedRoute(route, router, prompt.ids.subarray(Math.max(0, from)));
}
