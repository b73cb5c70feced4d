import * as vscode from 'vscode';
import { moaSettings } from './settings';
import { join, relative } from 'node:path';
import { CompletionClient } from '../core/inference/completionClient';
import { abortOn } from './abort';
import { DEFAULT_COMPLETE } from '../core/inference/service';
import { WorkspaceRouter } from '../core/routing/workspaceRouter';
import { errorMessage } from '../core/util/errors';
import { LruCache } from '../core/util/lru';
import type { RouteDecision } from '../core/routing/resolve';
import type { MoaWorkspace } from './workspace';

/** What the status bar says serves a file: the expert(s), or the base model and why. */
export function routeLabel(route: RouteDecision): string {
  if (route.experts.length) return route.experts.map((e) => e.name).join('+');
  if (route.byRouter) return 'learned router';
  return route.mode === 'off' ? 'base (routing off)' : 'base';
}

function sleep(ms: number, token: vscode.CancellationToken): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      sub.dispose();
      resolve(true);
    }, ms);
    const sub = token.onCancellationRequested(() => {
      clearTimeout(t);
      sub.dispose();
      resolve(false);
    });
  });
}

/**
 * Inline completions from the routed expert. Debounced, cancelled with the editor's token (between
 * decode steps), and the model loads on the first request, never at activation.
 */
export class MoaInlineProvider implements vscode.InlineCompletionItemProvider, vscode.Disposable {
  /** Routing for the status bar, on this thread (no model); completions run on the worker. */
  private routes?: WorkspaceRouter;
  private client?: CompletionClient;
  private failedOnce = false;
  private readonly cache = new LruCache<string, string>(256);
  readonly status = vscode.window.createStatusBarItem('moa.route', vscode.StatusBarAlignment.Right, 100);

  constructor(private readonly ws: MoaWorkspace) {
    this.status.name = 'MoA expert';
    this.status.command = 'moa.routingMenu';
  }

  /** New experts or a new config: drop the loaded state so the next request sees them. */
  reset(): void {
    this.cache.clear();
    void this.client?.dispose();
    this.routes = undefined;
    this.client = undefined;
    this.failedOnce = false;
  }

  private getRoutes(): WorkspaceRouter {
    return (this.routes ??= new WorkspaceRouter(this.ws.layout, this.ws.config()));
  }

  private getClient(): CompletionClient {
    const { layout, product } = this.ws;
    return (this.client ??= new CompletionClient(join(product.root, 'dist', 'completionWorker.js'), { layout, product, config: this.ws.config() },
      () => this.ws.python(), (l) => this.ws.log.info(`[engine] ${l}`)));
  }

  /** The route at the active editor's cursor, in the status bar. */
  showActiveRoute(): RouteDecision | undefined {
    const ed = vscode.window.activeTextEditor;
    return this.showRoute(ed?.document, ed?.selection.active);
  }

  /**
   * Shows in the status bar which expert (or mix) serves this file, at `at` when given (a fenced
   * block routes apart from its file in the learned and auto modes); returns the decision.
   */
  showRoute(doc: vscode.TextDocument | undefined, at?: vscode.Position): RouteDecision | undefined {
    if (!doc || doc.uri.scheme !== 'file' || !this.ws.hasConfig()) return void this.status.hide();
    try {
      const rel = relative(this.ws.layout.root, doc.uri.fsPath).split('\\').join('/');
      const prefix = at ? doc.getText(new vscode.Range(new vscode.Position(0, 0), at)) : undefined;
      const route = this.getRoutes().route(rel, doc.languageId, prefix);
      this.status.text = `$(circuit-board) MoA: ${routeLabel(route)}`;
      this.status.tooltip = route.reason;
      this.status.show();
      return route;
    } catch (e) {
      this.status.text = '$(warning) MoA';
      this.status.tooltip = errorMessage(e);
      this.status.show();
      return undefined;
    }
  }

  async provideInlineCompletionItems(
    doc: vscode.TextDocument,
    position: vscode.Position,
    _context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
  ): Promise<vscode.InlineCompletionItem[] | undefined> {
    const settings = moaSettings().inline;
    if (!settings.enabled || doc.uri.scheme !== 'file') return undefined;
    // Exporting the model spawns Python, which a restricted workspace must never do.
    if (!vscode.workspace.isTrusted || !this.ws.hasConfig()) return undefined;
    const rel = relative(this.ws.layout.root, doc.uri.fsPath).split('\\').join('/');
    if (rel.startsWith('..')) return undefined;
    const prefix = doc.getText(new vscode.Range(new vscode.Position(0, 0), position));
    // The text after the cursor: a base model with fill-in-the-middle tokens sees it too.
    const suffix = doc.getText(new vscode.Range(position, doc.lineAt(doc.lineCount - 1).range.end));
    const { maxTokens: maxNewTokens, promptTokens, stopAt: stop } = settings;
    let route: RouteDecision;
    try {
      route = this.getRoutes().route(rel, doc.languageId, prefix);
    } catch (e) {
      return this.fail(e);
    }
    if (route.domain && settings.disabledDomains.includes(route.domain)) return undefined;
    // Same text around the cursor, same experts, same rules: the same greedy completion, served from memory.
    const key = [route.mode, route.routeFrom ?? '', route.experts.map((e) => `${e.name}:${e.weight}`).join(','), maxNewTokens, promptTokens, stop, prefix.slice(-4096), suffix.slice(0, 1024)].join('\0');
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached ? [new vscode.InlineCompletionItem(cached, new vscode.Range(position, position))] : undefined;
    if (!(await sleep(settings.debounceMs, token))) return undefined;
    const abort = abortOn(token);
    try {
      const c = await this.getClient().complete(rel, prefix, { ...DEFAULT_COMPLETE, maxNewTokens, promptTokens, stop, languageId: doc.languageId, signal: abort.signal }, suffix);
      this.status.text = `$(circuit-board) MoA: ${routeLabel(c.route)} · ${Math.round(c.totalMs)} ms`;
      this.status.tooltip = c.route.reason;
      this.status.show();
      if (c.stopReason === 'cancelled' || token.isCancellationRequested) return undefined;
      const text = c.text.trim() ? c.text : '';
      this.cache.set(key, text);
      return text ? [new vscode.InlineCompletionItem(text, new vscode.Range(position, position))] : undefined;
    } catch (e) {
      return this.fail(e);
    } finally {
      abort.dispose();
    }
  }

  private fail(e: unknown): undefined {
    this.ws.log.error(`inline completion failed: ${errorMessage(e)}`);
    if (!this.failedOnce) {
      this.failedOnce = true;
      void vscode.window.showWarningMessage(`MoA completions unavailable: ${errorMessage(e).split('\n')[0]}`, 'Open Log').then((a) => a && this.ws.log.show());
    }
    return undefined;
  }

  dispose(): void {
    this.status.dispose();
    void this.client?.dispose();
  }
}
