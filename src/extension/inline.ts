import * as vscode from 'vscode';
import { relative } from 'node:path';
import { CompletionService, DEFAULT_COMPLETE } from '../core/inference/service';
import { errorMessage } from '../core/util/errors';
import type { RouteDecision } from '../core/routing/label';
import type { MoaWorkspace } from './workspace';

/** What the status bar says serves a file: the expert(s), or the base model and why. */
export function routeLabel(route: RouteDecision): string {
  if (route.experts.length) return route.experts.map((e) => e.name).join('+');
  return route.mode === 'off' ? 'base (routing off)' : 'base';
}

const DEBOUNCE_MS = 150;

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
  private service?: CompletionService;
  private failedOnce = false;
  readonly status = vscode.window.createStatusBarItem('moa.route', vscode.StatusBarAlignment.Right, 100);

  constructor(private readonly ws: MoaWorkspace) {
    this.status.name = 'MoA expert';
    this.status.command = 'moa.setRoutingMode';
  }

  /** New experts or a new config: drop the loaded state so the next request sees them. */
  reset(): void {
    void this.service?.dispose();
    this.service = undefined;
    this.failedOnce = false;
  }

  private getService(): CompletionService {
    this.service ??= new CompletionService(this.ws.layout, this.ws.product, this.ws.config(), this.ws.python(), (l) => this.ws.log.info(`[engine] ${l}`));
    return this.service;
  }

  /** Shows in the status bar which expert (or mix) serves this file; returns the decision. */
  showRoute(doc: vscode.TextDocument | undefined): RouteDecision | undefined {
    if (!doc || doc.uri.scheme !== 'file' || !this.ws.hasConfig()) return void this.status.hide();
    try {
      const rel = relative(this.ws.layout.root, doc.uri.fsPath).split('\\').join('/');
      const route = this.getService().route(rel, doc.languageId);
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
    const settings = vscode.workspace.getConfiguration('moa');
    if (!settings.get<boolean>('inline.enabled', true) || doc.uri.scheme !== 'file') return undefined;
    // Exporting the model spawns Python, which a restricted workspace must never do.
    if (!vscode.workspace.isTrusted || !this.ws.hasConfig()) return undefined;
    if (!(await sleep(DEBOUNCE_MS, token))) return undefined;
    const rel = relative(this.ws.layout.root, doc.uri.fsPath).split('\\').join('/');
    if (rel.startsWith('..')) return undefined;
    const abort = new AbortController();
    const sub = token.onCancellationRequested(() => abort.abort());
    try {
      const prefix = doc.getText(new vscode.Range(new vscode.Position(0, 0), position));
      const c = await this.getService().complete(rel, prefix, {
        ...DEFAULT_COMPLETE,
        maxNewTokens: settings.get<number>('inline.maxTokens', 24),
        singleLine: true,
        languageId: doc.languageId,
        signal: abort.signal,
      });
      this.status.text = `$(circuit-board) MoA: ${routeLabel(c.route)} · ${Math.round(c.totalMs)} ms`;
      this.status.tooltip = c.route.reason;
      this.status.show();
      if (token.isCancellationRequested || !c.text.trim()) return undefined;
      return [new vscode.InlineCompletionItem(c.text, new vscode.Range(position, position))];
    } catch (e) {
      this.ws.log.error(`inline completion failed: ${errorMessage(e)}`);
      if (!this.failedOnce) {
        this.failedOnce = true;
        void vscode.window.showWarningMessage(`MoA completions unavailable: ${errorMessage(e).split('\n')[0]}`, 'Open Log').then((a) => a && this.ws.log.show());
      }
      return undefined;
    } finally {
      sub.dispose();
    }
  }

  dispose(): void {
    this.status.dispose();
    void this.service?.dispose();
  }
}
