import { basename, join } from 'node:path';
import type { MoaConfig } from '../config/schema';
import { loadExpertWeights, workspaceTargets, type ExpertWeights } from '../adapters/store';
import { readBaseModel, resolveBaseModelDir, type BaseModelInfo } from '../models/base';
import type { ProductLayout, WorkspaceLayout } from '../paths';
import type { RouteDecision } from '../routing/resolve';
import { learnedRouteOnPrompt } from '../routing/learned';
import { WorkspaceRouter } from '../routing/workspaceRouter';
import { loadTokenizer } from '../tokenizer/load';
import type { Tokenizer } from '../tokenizer/types';
import { OnnxEngine, decodeThreads, type GenerateResult } from './engine';
import { stackExperts, type ExpertStack } from './expertStack';
import { ensureOnnxExport, graphTargets } from './export';
import { readOnnxModelInfo } from './modelInfo';
import { buildPrompt, decodeCompletion, decodeContinuation, detectFim, type FimTokens } from './prompt';
import { applyStop, type StopMode } from './stop';

export interface CompleteOptions {
  maxNewTokens: number;
  temperature: number;
  topP: number;
  seed: number;
  /**
   * Prompt budget in tokens, special tokens included: the prefix nearest the cursor, and for a base
   * model with fill-in-the-middle tokens the start of the suffix too (prompt.ts, `splitBudget`).
   */
  promptTokens: number;
  /** Where the completion ends (inline completions stop at the end of the line or block). */
  stop: StopMode;
  languageId?: string;
  signal?: AbortSignal;
  /** This expert alone serves this request, whatever the routing mode (e.g. to compare experts on one prompt). */
  expert?: string;
  /** This adapter folder alone serves this request (the mixed baseline, for evaluation). */
  adapterDir?: string;
  /** A prefix-only prompt even for a base with FIM tokens (to measure what FIM adds). */
  prefixOnly?: boolean;
  /** The base model alone serves this request, whatever the routing mode (`moa serve`'s model "base"). */
  base?: boolean;
  /** Strings that end the completion where they first appear, excluded (an OpenAI client's `stop`). */
  stopStrings?: readonly string[];
  /** Sees the completion's text after each generated token (stop rules applied): streaming. */
  onText?: (text: string) => void;
}

export const DEFAULT_COMPLETE: CompleteOptions = { maxNewTokens: 48, temperature: 0, topP: 0.95, seed: 0, promptTokens: 512, stop: 'none' };

export interface Completion {
  text: string;
  route: RouteDecision;
  /** How the prompt was laid out: FIM family (null: prefix only) and the tokens taken from each side. */
  prompt: { fim: string | null; tokens: number; prefixTokens: number; suffixTokens: number };
  tokens: number;
  /** The generated token ids, and the prompt's: what to compare with another runtime, id for id. */
  tokenIds: number[];
  promptTokenIds: number[];
  stopReason: string;
  prefillMs: number;
  totalMs: number;
  /** Greedy decoding's prompt lookup: passes that checked a draft, tokens drafted, tokens kept. */
  draft: GenerateResult['draft'];
}

/**
 * Base model + tokenizer + ONNX session + loaded experts for one workspace, shared by the CLI and the
 * inline completion provider. Experts are read once and re-stacked only when the routed set changes.
 */
export class CompletionService {
  private engine?: OnnxEngine;
  /** Routing, which needs no model: the status bar and `moa route` use it alone. */
  readonly routes: WorkspaceRouter;
  private tokenizer?: Tokenizer;
  /** Found once with the tokenizer: null for a model without FIM tokens. */
  private fim: FimTokens | null = null;
  private baseDir?: string;
  private base?: BaseModelInfo;
  private readonly experts = new Map<string, ExpertWeights>();
  private readonly stacks = new Map<string, ExpertStack>();

  constructor(
    private readonly layout: WorkspaceLayout,
    private readonly product: ProductLayout,
    private readonly config: MoaConfig,
    /** The interpreter for the one-time export: a path, or a function that finds it when needed. */
    private readonly python: string | (() => Promise<string>),
    private readonly onLog?: (line: string) => void,
  ) {
    this.routes = new WorkspaceRouter(layout, config);
  }

  async ready(): Promise<void> {
    if (this.engine) return;
    const dir = resolveBaseModelDir(this.config.baseModel, this.product, this.layout.root);
    this.baseDir = dir;
    this.base = readBaseModel(this.config.baseModel, dir);
    this.tokenizer = loadTokenizer(dir);
    this.fim = detectFim(this.tokenizer) ?? null;
    this.engine = await this.loadEngine();
  }

  /**
   * The base model's graph (exported once), in a session with completions' threading, taking LoRA
   * inputs for every projection the workspace's experts target.
   */
  private async loadEngine(): Promise<OnnxEngine> {
    const targets = graphTargets(workspaceTargets(this.layout.expertsDir, this.layout.baselinesDir));
    const exp = await ensureOnnxExport(this.layout, this.product, this.baseDir!, this.python, this.onLog, { targets, weights: this.config.inference.weights });
    const info = readOnnxModelInfo(exp.infoPath);
    return OnnxEngine.load(exp.onnxPath, info, decodeThreads(info));
  }

  /** An adapter folder outside the experts (the mixed baseline), loaded once under its path. */
  private adapter(dir: string): RouteDecision {
    const key = `@${dir}`;
    if (!this.experts.has(key)) this.experts.set(key, loadExpertWeights(dir, basename(dir), this.base!));
    return { mode: 'pinned', experts: [{ name: key, weight: 1 }], reason: `adapter ${dir} asked for this request (routing bypassed)` };
  }

  private stackFor(names: string[]): ExpertStack {
    const key = names.join('\0');
    let stack = this.stacks.get(key);
    if (!stack) {
      const weights = names.map((n) => {
        let w = this.experts.get(n);
        if (!w) {
          w = loadExpertWeights(join(this.layout.expertsDir, n), n, this.base!);
          this.experts.set(n, w);
        }
        return w;
      });
      stack = stackExperts(this.engine!.info, weights);
      this.stacks.set(key, stack);
    }
    return stack;
  }

  /** Completes at the cursor: `prefix` is the text before it, `suffix` the text after it (used by FIM models). */
  async complete(relPath: string, prefix: string, opts: CompleteOptions = DEFAULT_COMPLETE, suffix = ''): Promise<Completion> {
    await this.ready();
    let route = opts.base ? BASE_ROUTE : opts.adapterDir !== undefined ? this.adapter(opts.adapterDir) : opts.expert !== undefined ? this.routes.forced(opts.expert) : this.routes.route(relPath, opts.languageId, prefix);
    const tokenizer = this.tokenizer!;
    // Nothing after the cursor (the end of a file, an OpenAI-style request without `suffix`): a plain
    // prompt, as a plain completion API is expected to send; FIM markers around nothing add no text.
    const prefixOnly = opts.prefixOnly || suffix.length === 0;
    const prompt = buildPrompt(tokenizer, prefix, prefixOnly ? '' : suffix, opts.promptTokens, prefixOnly ? null : this.fim);
    if (route.byRouter) {
      // The router reads the text before the cursor, as `moa route` does: not a FIM prompt's suffix and markers.
      const read = prompt.fim ? buildPrompt(tokenizer, prefix, '', opts.promptTokens, null) : prompt;
      route = learnedRouteOnPrompt(route, this.routes.learned(), tokenizer, read, prefix);
    }
    const stack = this.stackFor(route.experts.map((e) => e.name));
    // The base model alone is one zero expert.
    const weights = route.experts.length ? route.experts.map((e) => e.weight) : [0];
    const finished = (ids: number[]) => cutAtStopStrings(applyStop(decodeCompletion(decodeContinuation(tokenizer, prompt.ids, ids)), opts.stop), opts.stopStrings);
    const watch = opts.stop !== 'none' || opts.stopStrings?.length || opts.onText;
    const result = await this.engine!.generate(prompt.ids, {
      stack,
      expertWeights: weights,
      maxNewTokens: opts.maxNewTokens,
      temperature: opts.temperature,
      topP: opts.topP,
      seed: opts.seed,
      signal: opts.signal,
      stopTokens: prompt.fim?.stop,
      shouldStop: watch ? (ids) => {
        const t = finished(ids);
        opts.onText?.(t.text);
        return t.done;
      } : undefined,
    });
    const text = finished(result.tokens).text;
    const promptInfo = { fim: prompt.fim?.family ?? null, tokens: prompt.ids.length, prefixTokens: prompt.prefixTokens, suffixTokens: prompt.suffixTokens };
    return { text, route, prompt: promptInfo, tokens: result.tokens.length, tokenIds: Array.from(result.tokens), promptTokenIds: Array.from(prompt.ids), stopReason: result.stopReason, prefillMs: result.prefillMs, totalMs: result.totalMs, draft: result.draft };
  }

  async dispose(): Promise<void> {
    await this.engine?.release();
    this.engine = undefined;
  }
}

const BASE_ROUTE: RouteDecision = { mode: 'off', experts: [], reason: 'the base model asked for this request (no expert)' };

/** Cuts `t` at the first of `stops` it contains (the stop string excluded): done from then on. */
export function cutAtStopStrings(t: { text: string; done: boolean }, stops?: readonly string[]): { text: string; done: boolean } {
  let at = -1;
  for (const s of stops ?? []) {
    const i = s ? t.text.indexOf(s) : -1;
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at < 0 ? t : { text: t.text.slice(0, at), done: true };
}
