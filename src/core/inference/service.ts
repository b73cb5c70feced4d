import type { MoaConfig } from '../config/schema';
import { listExperts, loadExpertWeights, type ExpertWeights } from '../adapters/store';
import { readExpertState } from '../adapters/state';
import { readBaseModel, resolveBaseModelDir, type BaseModelInfo } from '../models/base';
import type { ProductLayout, WorkspaceLayout } from '../paths';
import { routeByLabel, type RouteDecision } from '../routing/label';
import { loadTokenizer } from '../tokenizer/load';
import type { Tokenizer } from '../tokenizer/types';
import { OnnxEngine } from './engine';
import { stackExperts, type ExpertStack } from './expertStack';
import { ensureOnnxExport } from './export';
import { readOnnxModelInfo } from './modelInfo';
import { buildPrefixPrompt, decodeCompletion } from './prompt';
import { applyStop, type StopMode } from './stop';

export interface CompleteOptions {
  maxNewTokens: number;
  temperature: number;
  topP: number;
  seed: number;
  /** Prompt budget in tokens before the cursor. */
  promptTokens: number;
  /** Where the completion ends (inline completions stop at the end of the line or block). */
  stop: StopMode;
  languageId?: string;
  signal?: AbortSignal;
}

export const DEFAULT_COMPLETE: CompleteOptions = { maxNewTokens: 48, temperature: 0, topP: 0.95, seed: 0, promptTokens: 512, stop: 'none' };

export interface Completion {
  text: string;
  route: RouteDecision;
  tokens: number;
  stopReason: string;
  prefillMs: number;
  totalMs: number;
}

/**
 * Base model + tokenizer + ONNX session + loaded experts for one workspace, shared by the CLI and the
 * inline completion provider. Experts are read once and re-stacked only when the routed set changes.
 */
export class CompletionService {
  private engine?: OnnxEngine;
  private tokenizer?: Tokenizer;
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
    this.base = readBaseModel(this.config.baseModel, dir);
    this.tokenizer = loadTokenizer(dir);
    const exp = await ensureOnnxExport(this.layout, this.product, dir, this.python, this.onLog);
    this.engine = await OnnxEngine.load(exp.onnxPath, readOnnxModelInfo(exp.infoPath));
  }

  /** Forget loaded experts (after training wrote new ones). */
  invalidateExperts(): void {
    this.experts.clear();
    this.stacks.clear();
  }

  route(relPath: string, languageId?: string): RouteDecision {
    const state = readExpertState(this.layout);
    const attached = new Set(listExperts(this.layout.expertsDir).filter((e) => e.status === 'ok' && !state.detached.includes(e.name)).map((e) => e.name));
    return routeByLabel(this.config, relPath, attached, languageId, state.pinned);
  }

  private stackFor(names: string[]): ExpertStack {
    const key = names.join('\0');
    let stack = this.stacks.get(key);
    if (!stack) {
      const weights = names.map((n) => {
        let w = this.experts.get(n);
        if (!w) {
          w = loadExpertWeights(`${this.layout.expertsDir}/${n}`, n, this.base!);
          this.experts.set(n, w);
        }
        return w;
      });
      stack = stackExperts(this.engine!.info, weights);
      this.stacks.set(key, stack);
    }
    return stack;
  }

  async complete(relPath: string, prefix: string, opts: CompleteOptions = DEFAULT_COMPLETE): Promise<Completion> {
    await this.ready();
    const route = this.route(relPath, opts.languageId);
    const stack = this.stackFor(route.experts.map((e) => e.name));
    const weights = route.experts.length ? route.experts.map((e) => e.weight) : [0];
    const tokenizer = this.tokenizer!;
    const prompt = buildPrefixPrompt(prefix, tokenizer, opts.promptTokens);
    const result = await this.engine!.generate(prompt, {
      stack,
      expertWeights: weights,
      maxNewTokens: opts.maxNewTokens,
      temperature: opts.temperature,
      topP: opts.topP,
      seed: opts.seed,
      signal: opts.signal,
      shouldStop: opts.stop === 'none' ? undefined : (ids) => applyStop(decodeCompletion(tokenizer.decodeBytes(ids)), opts.stop).done,
    });
    const text = applyStop(decodeCompletion(tokenizer.decodeBytes(result.tokens)), opts.stop).text;
    return { text, route, tokens: result.tokens.length, stopReason: result.stopReason, prefillMs: result.prefillMs, totalMs: result.totalMs };
  }

  async dispose(): Promise<void> {
    await this.engine?.release();
    this.engine = undefined;
  }
}
