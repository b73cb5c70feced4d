import { basename, join } from 'node:path';
import type { MoaConfig } from '../config/schema';
import { loadExpertWeights, usableExperts, workspaceTargets, type ExpertWeights } from '../adapters/store';
import { readExpertState, type ExpertState } from '../adapters/state';
import { MoaError } from '../util/errors';
import { folderStamp } from '../util/folderStamp';
import { loadRouterWeights, readRouterInfo, type RouterInfo, type RouterWeights } from '../adapters/router';
import { readBaseModel, resolveBaseModelDir, type BaseModelInfo } from '../models/base';
import type { ProductLayout, WorkspaceLayout } from '../paths';
import { resolveRoute, type RouteDecision } from '../routing/resolve';
import { loadTokenizer } from '../tokenizer/load';
import type { Tokenizer } from '../tokenizer/types';
import { OnnxEngine, decodeThreads, type GenerateResult } from './engine';
import { stackExperts, type ExpertStack } from './expertStack';
import { DEFAULT_VARIANT, ensureOnnxExport, graphTargets, type ExportVariant } from './export';
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
  /** With the learned router: the weights each layer chose on the prompt, [layers][experts]. */
  layerRouting?: { experts: string[]; weights: number[][] };
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
  private learned?: { engine: OnnxEngine; router: RouterWeights };
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
  ) {}

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
  private async loadEngine(variant: ExportVariant = DEFAULT_VARIANT): Promise<OnnxEngine> {
    const targets = graphTargets(workspaceTargets(this.layout.expertsDir, this.layout.baselinesDir));
    const exp = await ensureOnnxExport(this.layout, this.product, this.baseDir!, this.python, this.onLog, { ...variant, targets, weights: this.config.inference.weights });
    const info = readOnnxModelInfo(exp.infoPath);
    return OnnxEngine.load(exp.onnxPath, info, decodeThreads(info));
  }

  /** The experts a request can name: usable and not detached (the listing is cached by the folder's stamp). */
  attachedExperts(): string[] {
    return [...this.attached(readExpertState(this.layout))];
  }

  private attached(state: ExpertState): Set<string> {
    return new Set(this.usableExperts().filter((e) => !state.detached.includes(e)));
  }

  private listing?: { stamp: string; usable: string[] };
  private routerRead?: { stamp: string; info: RouterInfo | undefined };

  /**
   * The experts that load, re-listed only when the folder changed. Routing runs on every request,
   * and listing reads each expert's files (bench/core/RESULTS.md: it was over 5% of the time to
   * the first token).
   */
  private usableExperts(): string[] {
    const dir = this.layout.expertsDir;
    const stamp = folderStamp(dir);
    if (this.listing?.stamp !== stamp) {
      this.listing = { stamp, usable: usableExperts(dir).map((e) => e.name) };
    }
    return this.listing.usable;
  }

  /** The trained router, when it is whole and every expert it routes among is attached. */
  private usableRouter(attached: Set<string>): RouterInfo | undefined {
    // Reading it hashes the router's weights: done again only when the router folder changed.
    const stamp = folderStamp(this.layout.routerDir);
    if (this.routerRead?.stamp !== stamp) this.routerRead = { stamp, info: readRouterInfo(this.layout.routerDir) };
    const info = this.routerRead.info;
    if (!info || info.status !== 'ok' || info.experts.length < 2) return undefined;
    return info.experts.every((e) => attached.has(e)) ? info : undefined;
  }

  /** The route at a cursor (`prefix`: the text before it), or the file's route without one. */
  route(relPath: string, languageId?: string, prefix?: string): RouteDecision {
    return this.decide(relPath, languageId, prefix).route;
  }

  /**
   * The route, and the router behind it when the learned router decides: expert state and the
   * router are read once per request, since this runs on every completion.
   */
  private decide(relPath: string, languageId?: string, prefix?: string): { route: RouteDecision; router?: RouterInfo } {
    const state = readExpertState(this.layout);
    const attached = this.attached(state);
    const mode = this.config.routing.mode;
    const router = mode === 'off' ? undefined : this.usableRouter(attached);
    const route = resolveRoute(this.config, { relPath, languageId, prefix, attached, pinned: state.pinned, router: router?.experts });
    return route.byRouter ? { route, router } : { route };
  }

  private forced(name: string): RouteDecision {
    const ok = this.usableExperts();
    if (!ok.includes(name)) throw new MoaError(`${join(this.layout.expertsDir, name)}: no usable expert "${name}"`, ok.length ? `Experts: ${ok.join(', ')}.` : 'Run "moa train" first.');
    return { mode: 'pinned', experts: [{ name, weight: 1 }], reason: `expert ${name} asked for this request (routing bypassed)` };
  }

  /** An adapter folder outside the experts (the mixed baseline), loaded once under its path. */
  private adapter(dir: string): RouteDecision {
    const key = `@${dir}`;
    if (!this.experts.has(key)) this.experts.set(key, loadExpertWeights(dir, basename(dir), this.base!));
    return { mode: 'pinned', experts: [{ name: key, weight: 1 }], reason: `adapter ${dir} asked for this request (routing bypassed)` };
  }

  private async learnedEngine(info: RouterInfo): Promise<{ engine: OnnxEngine; router: RouterWeights }> {
    if (this.learned && this.learned.router.experts.join('\0') === info.experts.join('\0')) return this.learned;
    await this.ready();
    const engine = await this.loadEngine({ learnedRouting: true, topK: info.topK });
    const router = loadRouterWeights(this.layout.routerDir, info, this.base!.numLayers, this.base!.hiddenSize);
    await this.learned?.engine.release();
    this.learned = { engine, router };
    return this.learned;
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
    const decided = opts.base ? { route: BASE_ROUTE } : opts.adapterDir !== undefined ? { route: this.adapter(opts.adapterDir) } : opts.expert !== undefined ? { route: this.forced(opts.expert) } : this.decide(relPath, opts.languageId, prefix);
    let route = decided.route;
    const routerInfo = decided.router;
    const learned = routerInfo ? await this.learnedEngine(routerInfo) : undefined;
    const names = learned ? learned.router.experts : route.experts.map((e) => e.name);
    const stack = this.stackFor(names);
    // The learned graph ignores these (its routers decide); the base model alone is one zero expert.
    const weights = route.experts.length ? route.experts.map((e) => e.weight) : names.length ? names.map(() => 0) : [0];
    const tokenizer = this.tokenizer!;
    // Nothing after the cursor (the end of a file, an OpenAI-style request without `suffix`): a plain
    // prompt, as a plain completion API is expected to send; FIM markers around nothing add no text.
    const prefixOnly = opts.prefixOnly || suffix.length === 0;
    const prompt = buildPrompt(tokenizer, prefix, prefixOnly ? '' : suffix, opts.promptTokens, prefixOnly ? null : this.fim);
    const finished = (ids: number[]) => cutAtStopStrings(applyStop(decodeCompletion(decodeContinuation(tokenizer, prompt.ids, ids)), opts.stop), opts.stopStrings);
    const watch = opts.stop !== 'none' || opts.stopStrings?.length || opts.onText;
    const result = await (learned?.engine ?? this.engine!).generate(prompt.ids, {
      stack,
      router: learned?.router,
      routeFrom: route.routeFrom === undefined ? undefined : routeStart(tokenizer, prompt, prefix, route.routeFrom),
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
    let layerRouting: Completion['layerRouting'];
    if (learned && result.routing) {
      layerRouting = { experts: names, weights: result.routing };
      const decided = learnedDecision(names, result.routing);
      // Keep the mode that was asked for and why the router decided (a file in no domain, say).
      const why = route.reason.replace(/,? ?the learned router chooses.*$/, '');
      route = { ...decided, mode: route.mode, ...(route.block ? { block: route.block, routeFrom: route.routeFrom } : {}), reason: why.trim() ? `${why.trim()} the learned router decided: ${decided.reason}` : decided.reason };
    }
    const promptInfo = { fim: prompt.fim?.family ?? null, tokens: prompt.ids.length, prefixTokens: prompt.prefixTokens, suffixTokens: prompt.suffixTokens };
    return { text, route, layerRouting, prompt: promptInfo, tokens: result.tokens.length, tokenIds: Array.from(result.tokens), promptTokenIds: Array.from(prompt.ids), stopReason: result.stopReason, prefillMs: result.prefillMs, totalMs: result.totalMs, draft: result.draft };
  }

  async dispose(): Promise<void> {
    await this.engine?.release();
    await this.learned?.engine.release();
    this.engine = undefined;
    this.learned = undefined;
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

/** Pooling fewer tokens than this, the router is guessing (bench/router_probe.py: 44 % at 16 bytes); it reads further back. */
const MIN_ROUTE_TOKENS = 32;

/**
 * The prompt position the routers start pooling at, for a block starting at `from` in `prefix`:
 * the block's tokens (at least MIN_ROUTE_TOKENS) at the prompt's end. A FIM prompt lays the prefix out
 * between markers, and is routed whole.
 */
export function routeStart(tokenizer: Tokenizer, prompt: { ids: Uint32Array; prefixTokens: number; fim?: unknown }, prefix: string, from: number): number {
  if (prompt.fim) return 0;
  const start = prompt.ids.length - prompt.prefixTokens;
  // Longer than the prompt can hold: the whole prompt is the block.
  if ((prefix.length - from) > 8 * prompt.prefixTokens) return start;
  const blockTokens = tokenizer.encode(prefix.slice(from)).length;
  return Math.max(start, prompt.ids.length - Math.max(MIN_ROUTE_TOKENS, blockTokens));
}

/** What the learned router decided on a prompt: each expert's weight averaged over the layers. */
export function learnedDecision(experts: string[], perLayer: number[][]): RouteDecision {
  const mean = experts.map((_, e) => perLayer.reduce((a, row) => a + (row[e] ?? 0), 0) / Math.max(1, perLayer.length));
  const chosen = experts.map((name, e) => ({ name, weight: mean[e]! })).filter((x) => x.weight > 0).sort((a, b) => b.weight - a.weight);
  const top = chosen.map((x) => `${x.name} ${x.weight.toFixed(2)}`).join(', ');
  return { mode: 'learned', experts: chosen, reason: `learned router (mean over ${perLayer.length} layers): ${top}` };
}
