import * as vscode from 'vscode';
import { join } from 'node:path';
import { CompletionClient } from '../core/inference/completionClient';
import { WorkspaceRouter } from '../core/routing/workspaceRouter';
import { SERVE_DEFAULTS, servedConfig, startServer, type RunningServer } from '../core/serve/server';
import { MoaError } from '../core/util/errors';
import { moaSettings } from './settings';
import type { MoaWorkspace } from './workspace';

/**
 * `moa serve` started from the editor, for other tools on this machine (Continue, a script with the
 * openai client): loopback only, no API key. Generation runs on its own completion worker, so a
 * request never holds the extension host; the expert list is read on this thread (files only).
 */
export class ServeController implements vscode.Disposable {
  private server?: RunningServer;
  private client?: CompletionClient;
  private readonly status = vscode.window.createStatusBarItem('moa.serve', vscode.StatusBarAlignment.Right, 99);

  constructor(private readonly ws: MoaWorkspace) {
    this.status.name = 'MoA completion server';
    this.status.command = 'moa.stopServer';
  }

  get url(): string | undefined {
    return this.server && `${this.server.url}/v1`;
  }

  async start(): Promise<string> {
    if (this.server) return this.url!;
    // Serving may export the model, which runs Python: never in a restricted workspace.
    if (!vscode.workspace.isTrusted) throw new MoaError('a restricted workspace cannot serve completions', 'Trust the workspace first.');
    const config = servedConfig(this.ws.config());
    const log = this.log;
    const listing = new WorkspaceRouter(this.ws.layout, config);
    try {
      this.server = await startServer(
        { experts: () => listing.attachedExperts(), complete: (rel, prompt, opts, suffix) => this.worker().complete(rel, prompt, opts, suffix), chat: false },
        { ...SERVE_DEFAULTS, port: moaSettings().servePort, onLog: log },
      );
    } catch (e) {
      await this.release();
      if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new MoaError(`port ${moaSettings().servePort} is in use`, 'Set moa.serve.port to another port (0 picks a free one).');
      throw e;
    }
    log(`listening on ${this.url} (routing ${config.routing.mode})`);
    this.status.text = `$(broadcast) MoA serve :${this.server.port}`;
    this.status.tooltip = `${this.url}: OpenAI-compatible completions (models: moa, base, experts). Click to stop.`;
    this.status.show();
    return this.url!;
  }

  /** Stops accepting, lets the requests in flight finish, then frees the worker. */
  async stop(): Promise<boolean> {
    const server = this.server;
    if (!server) return false;
    this.server = undefined;
    this.status.hide();
    await server.close();
    await this.release();
    this.ws.log.info('[serve] stopped');
    return true;
  }

  /** New experts or a new config: the next request starts a new worker that sees them. */
  reset(): void {
    void this.client?.dispose();
    this.client = undefined;
  }

  private readonly log = (l: string) => this.ws.log.info(`[serve] ${l}`);

  /** The completion worker, started on the first request after start() or reset(). */
  private worker(): CompletionClient {
    const { layout, product } = this.ws;
    return (this.client ??= new CompletionClient(join(product.root, 'dist', 'completionWorker.js'), { layout, product, config: servedConfig(this.ws.config()) }, () => this.ws.python(), this.log));
  }

  private async release(): Promise<void> {
    await this.client?.dispose();
    this.client = undefined;
  }

  dispose(): void {
    void this.stop();
    this.status.dispose();
  }
}
