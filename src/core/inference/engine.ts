import type { InferenceSession, Tensor } from 'onnxruntime-node';
import { MoaError } from '../util/errors';
import type { ExpertStack } from './expertStack';
import type { OnnxModelInfo } from './modelInfo';
import { lookupDraft, verifyDraft } from './lookup';
import { sampleToken, seededRandom, type SamplingOptions } from './sampling';

type Ort = typeof import('onnxruntime-node');

let ortModule: Promise<Ort> | undefined;
/** onnxruntime-node is loaded on first use only: never at extension activation. */
export function loadOrt(): Promise<Ort> {
  ortModule ??= import('onnxruntime-node');
  return ortModule;
}

export interface GenerateOptions extends SamplingOptions {
  stack: ExpertStack;
  /** Routing weight per stacked expert. */
  expertWeights: number[];
  maxNewTokens: number;
  seed: number;
  /** Tokens that end generation as EOS does (a FIM model's markers): never part of the output. */
  stopTokens?: readonly number[];
  /** Sees each step's next-token logits row (valid only during the call): tests compare it with PyTorch. */
  onLogits?: (row: Float32Array, step: number) => void;
  /** Called with the ids generated so far; true stops generation (the stop rule). */
  shouldStop?: (generated: number[]) => boolean;
  signal?: AbortSignal;
  /** Greedy decoding only: most prompt-lookup tokens checked per pass (default DRAFT_TOKENS; 0 = off). */
  draftTokens?: number;
  /**
   * `in-place` (the default where the graph allows it, `kvInPlace`): one buffer per layer holds the
   * whole cache and each pass writes its new positions into it; `grow`: each pass returns the cache
   * one pass longer, a copy of all of it (what graphs without GroupQueryAttention do).
   */
  kvCache?: 'in-place' | 'grow';
}

export interface GenerateResult {
  tokens: number[];
  stopReason: 'eos' | 'max-tokens' | 'stop-rule' | 'cancelled';
  prefillMs: number;
  totalMs: number;
  /** Prompt lookup: passes that checked a draft, tokens drafted, tokens the model kept. */
  draft: { passes: number; proposed: number; accepted: number };
}

/** Drafted tokens checked per pass: a pass over 1 + 8 tokens costs little more than over 1 here. */
const DRAFT_TOKENS = 8;

/**
 * Below this hidden size one thread decodes faster than several: each matmul of a decode step
 * (one token) is then a few microseconds of work, less than handing it to a thread pool and
 * waiting for it, and a thread pool spinning beside the editor's own processes slows both.
 * Measured on moa-tiny (hidden 192): bench/core/RESULTS.md. Batched work (eval) keeps the pool.
 */
export const SINGLE_THREAD_BELOW_HIDDEN = 512;

/** Intra-op threads for a session that serves completions (token-by-token decoding). */
export function decodeThreads(info: Pick<OnnxModelInfo, 'hiddenSize'>): number {
  return info.hiddenSize < SINGLE_THREAD_BELOW_HIDDEN ? 1 : 0;
}

/** One onnxruntime session for a base model; experts and routing travel as inputs, never as a new session. */
export class OnnxEngine {
  private constructor(
    private readonly ort: Ort,
    private readonly session: InferenceSession,
    readonly info: OnnxModelInfo,
  ) {}

  /**
   * `threads`: onnxruntime's intra-op threads; 0 (the default) lets onnxruntime choose, one per
   * physical core. Completions pass `decodeThreads(info)`.
   */
  static async load(onnxPath: string, info: OnnxModelInfo, threads = 0): Promise<OnnxEngine> {
    const ort = await loadOrt();
    let session: InferenceSession;
    try {
      session = await ort.InferenceSession.create(onnxPath, { graphOptimizationLevel: 'all', intraOpNumThreads: threads });
    } catch (e) {
      throw new MoaError(`${onnxPath}: onnxruntime could not load the model (${e instanceof Error ? e.message : String(e)})`, 'Delete the folder to re-export it.');
    }
    return new OnnxEngine(ort, session, info);
  }

  /** The LoRA stacks and the routing weights (the same row for every sequence of the batch). */
  private expertFeeds(stack: ExpertStack, weights: readonly number[], batch = 1): Record<string, Tensor> {
    const E = Math.max(1, stack.names.length);
    if (weights.length !== E) throw new MoaError(`routing gave ${weights.length} weights for ${E} stacked experts`);
    const rows = new Float32Array(batch * E);
    for (let b = 0; b < batch; b++) rows.set(weights, b * E);
    const feeds: Record<string, Tensor> = { expert_weights: new this.ort.Tensor('float32', rows, [batch, E]) };
    for (const [m, t] of stack.modules) {
      feeds[`lora.${m}.A`] = new this.ort.Tensor('float32', t.A, t.dimsA);
      feeds[`lora.${m}.B`] = new this.ort.Tensor('float32', t.B, t.dimsB);
    }
    return feeds;
  }

  /**
   * Prefill on the prompt, then decode with the KV cache: one token per pass, or, for greedy
   * decoding, a prompt-lookup draft checked in one pass (`draftTokens`; lookup.ts). Drafting
   * never changes greedy output: a pass keeps only the drafted tokens the model itself picks.
   */
  async generate(prompt: ArrayLike<number>, opts: GenerateOptions): Promise<GenerateResult> {
    const t0 = performance.now();
    const { ort, info } = this;
    const random = seededRandom(opts.seed);
    const fixed = this.expertFeeds(opts.stack, opts.expertWeights);
    const draftMax = opts.temperature <= 0 ? Math.max(0, opts.draftTokens ?? DRAFT_TOKENS) : 0;
    if (prompt.length >= info.maxPositions) {
      throw new MoaError(`the prompt has ${prompt.length} tokens; this model takes ${info.maxPositions} positions in all`, 'Lower the prompt budget (moa.inline.promptTokens, or --prompt-tokens).');
    }
    // Generation ends at the model's last position, as at maxNewTokens.
    const maxNew = Math.min(opts.maxNewTokens, info.maxPositions - prompt.length);
    // In place: buffers long enough for the whole request, given as the inputs and as the outputs
    // (the same memory), so GroupQueryAttention appends the new positions and copies nothing else.
    // Otherwise every pass copies the whole cache twice (into `present`, then out to JS), which
    // grows with the context: bench/core/RESULTS.md.
    const inPlace = info.kvInPlace && opts.kvCache !== 'grow';
    const capacity = inPlace ? prompt.length + maxNew : 0;
    const past: Record<string, Tensor> = {};
    for (let i = 0; i < info.numLayers; i++) {
      for (const kv of ['key', 'value']) {
        past[`past_key_values.${i}.${kv}`] = new ort.Tensor('float32', new Float32Array(info.numKvHeads * capacity * info.headDim), [1, info.numKvHeads, capacity, info.headDim]);
      }
    }
    // In place, the buffers stay ours for the whole request (onnxruntime-node also returns a copy
    // of each; it is not needed), so what to fetch is the same every pass.
    const fetches = inPlace
      ? Object.fromEntries(this.session.outputNames.map((name) => [name, name.startsWith('present.') ? past[`past_key_values.${name.slice('present.'.length)}`]! : null]))
      : undefined;
    const context = Array.from(prompt);
    const tokens: number[] = [];
    const draft = { passes: 0, proposed: 0, accepted: 0 };
    let budget = draftMax;
    let input = context.slice();
    let pastLen = 0;
    let prefillMs = 0;
    let stopReason: GenerateResult['stopReason'] | undefined;
    while (!stopReason && tokens.length < maxNew) {
      if (opts.signal?.aborted) {
        stopReason = 'cancelled';
        break;
      }
      const first = pastLen === 0;
      // The last row of a pass yields a token too, so a draft never runs past maxNewTokens.
      const guess = first ? [] : lookupDraft(context, Math.min(budget, maxNew - tokens.length - 1));
      const ids = [...input, ...guess];
      const seq = ids.length;
      const total = pastLen + seq;
      const feeds: Record<string, Tensor> = {
        ...fixed,
        ...past,
        input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, (x) => BigInt(x)), [1, seq]),
        attention_mask: new ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]),
        position_ids: new ort.Tensor('int64', BigInt64Array.from({ length: seq }, (_, i) => BigInt(pastLen + i)), [1, seq]),
        // Only the rows this pass reads: the last input token's and the drafted tokens'.
        logits_to_keep: new ort.Tensor('int64', BigInt64Array.of(BigInt(guess.length + 1)), [1]),
      };
      const out = await this.session.run(feeds, fetches);
      if (first) prefillMs = performance.now() - t0;
      const logits = out['logits']!.data as Float32Array;
      const V = info.vocabSize;
      const returned = logits.length / V; // the last rows of the pass
      // Rows from the last input token on: row j is the pick after the input and j drafted tokens.
      const rows = Array.from({ length: guess.length + 1 }, (_, j) => logits.subarray((returned - 1 - guess.length + j) * V, (returned - guess.length + j) * V));
      const picks = verifyDraft(guess, (j) => sampleToken(rows[j]!, opts, random));
      const agreed = picks.length - 1; // drafted tokens the model agreed with
      if (guess.length) {
        draft.passes++;
        draft.proposed += guess.length;
        draft.accepted += agreed;
        // A miss shortens the next draft to what this one got right (+1), a full hit doubles it:
        // a long wrong draft costs a wider pass for nothing.
        budget = agreed === guess.length ? Math.min(draftMax, budget * 2) : agreed + 1;
      }
      pastLen = total - (guess.length - agreed);
      // In place, the buffers already hold this pass's positions, and those past pastLen (a rejected
      // draft's) are never read: the next pass writes over them.
      for (let i = 0; i < info.numLayers && !inPlace; i++) {
        for (const kv of ['key', 'value']) {
          const present = out[`present.${i}.${kv}`]!;
          past[`past_key_values.${i}.${kv}`] = agreed < guess.length ? this.truncate(present, pastLen) : present;
        }
      }
      for (const [j, next] of picks.entries()) {
        opts.onLogits?.(rows[j]!, tokens.length);
        if (next === info.eosTokenId || opts.stopTokens?.includes(next)) {
          stopReason = 'eos';
          break;
        }
        tokens.push(next);
        context.push(next);
        if (opts.shouldStop?.(tokens)) {
          stopReason = 'stop-rule';
          break;
        }
        if (tokens.length >= maxNew) break;
      }
      input = [picks[picks.length - 1]!];
    }
    return { tokens, stopReason: stopReason ?? 'max-tokens', prefillMs, totalMs: performance.now() - t0, draft };
  }

  /** The cache's first `length` positions ([1, kv_heads, T, head_dim] → [1, kv_heads, length, head_dim]). */
  private truncate(t: Tensor, length: number): Tensor {
    const [, heads, T, D] = t.dims as number[];
    const src = t.data as Float32Array;
    const dst = new Float32Array(heads! * length * D!);
    for (let h = 0; h < heads!; h++) dst.set(src.subarray(h * T! * D!, (h * T! + length) * D!), h * length * D!);
    return new this.ort.Tensor('float32', dst, [1, heads!, length, D!]);
  }

  /** Feeds for equal-length rows with no cache: the whole sequence in one pass. */
  private fullFeeds(rows: ArrayLike<number>[], stack: ExpertStack, weights: readonly number[]): Record<string, Tensor> {
    const { ort, info } = this;
    const B = rows.length;
    const S = rows[0]!.length;
    const ids = new BigInt64Array(B * S);
    rows.forEach((w, i) => {
      for (let j = 0; j < S; j++) ids[i * S + j] = BigInt(w[j]!);
    });
    const feeds: Record<string, Tensor> = {
      ...this.expertFeeds(stack, weights, B),
      input_ids: new ort.Tensor('int64', ids, [B, S]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(B * S).fill(1n), [B, S]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from({ length: B * S }, (_, k) => BigInt(k % S)), [B, S]),
      logits_to_keep: new ort.Tensor('int64', BigInt64Array.of(BigInt(S)), [1]), // every position
    };
    for (let i = 0; i < info.numLayers; i++) {
      for (const kv of ['key', 'value']) feeds[`past_key_values.${i}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [B, info.numKvHeads, 0, info.headDim]);
    }
    return feeds;
  }

  /** Logits at every position of one sequence, [seq × vocab], recomputed in full (no cache). */
  async logits(ids: ArrayLike<number>, stack: ExpertStack, expertWeights: number[]): Promise<Float32Array> {
    return (await this.session.run(this.fullFeeds([ids], stack, expertWeights), ['logits']))['logits']!.data as Float32Array;
  }

  /**
   * Each window's mean next-token loss (nats/token): what a mean and its standard error come from.
   * `scoreFrom`: only the tokens from this position on are scored (what follows a cursor).
   */
  async windowLosses(windows: Uint32Array[], stack: ExpertStack, weights: readonly number[], opts: { batch?: number; scoreFrom?: number } = {}): Promise<number[]> {
    const batch = opts.batch ?? 8;
    const first = Math.max(0, (opts.scoreFrom ?? 1) - 1);
    const { info } = this;
    const out: number[] = [];
    for (let b0 = 0; b0 < windows.length; b0 += batch) {
      const rows = windows.slice(b0, b0 + batch);
      const B = rows.length;
      const S = rows[0]!.length;
      // Only the logits come back: the cache a full pass also computes is never copied out.
      const logits = (await this.session.run(this.fullFeeds(rows, stack, weights), ['logits']))['logits']!.data as Float32Array;
      const V = info.vocabSize;
      for (let i = 0; i < B; i++) {
        let total = 0;
        for (let j = first; j < S - 1; j++) {
          const row = logits.subarray((i * S + j) * V, (i * S + j + 1) * V);
          let max = -Infinity;
          for (let k = 0; k < V; k++) if (row[k]! > max) max = row[k]!;
          let sum = 0;
          for (let k = 0; k < V; k++) sum += Math.exp(row[k]! - max);
          total += Math.log(sum) + max - row[rows[i]![j + 1]!]!;
        }
        out.push(total / Math.max(1, S - 1 - first));
      }
    }
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
