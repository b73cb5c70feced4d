import * as vscode from 'vscode';
import { inspectExpert } from '../core/adapters/inspection';
import { errorMessage } from '../core/util/errors';
import { parseInspectorMessage, type InspectorHostMessage } from '../../webview/inspector/protocol';
import { webviewHtml, webviewOptions } from './webviewHtml';
import type { MoaWorkspace } from './workspace';

/** The expert inspector's host: computes the statistics in core and sends them to the app. */
export class InspectorPanel {
  private static current?: InspectorPanel;
  private expert: string;

  static show(context: vscode.ExtensionContext, ws: MoaWorkspace, expert: string): void {
    if (InspectorPanel.current) {
      InspectorPanel.current.expert = expert;
      InspectorPanel.current.panel.title = `MoA Expert: ${expert}`;
      InspectorPanel.current.panel.reveal();
      InspectorPanel.current.send();
      return;
    }
    const panel = vscode.window.createWebviewPanel('moa.inspector', `MoA Expert: ${expert}`, vscode.ViewColumn.Active, webviewOptions(context.extensionUri));
    InspectorPanel.current = new InspectorPanel(panel, context, ws, expert);
  }

  private constructor(
    private readonly panel: vscode.WebviewPanel,
    context: vscode.ExtensionContext,
    private readonly ws: MoaWorkspace,
    expert: string,
  ) {
    this.expert = expert;
    panel.webview.html = webviewHtml(panel.webview, context.extensionUri, 'inspector', 'MoA Expert', { bundledCss: false }, `<h1 id="title">Expert</h1>
<vscode-data-grid id="facts" grid-template-columns="160px 1fr" aria-label="Expert facts"></vscode-data-grid>
<h2>Update norm per layer</h2><div class="legend" id="norms-legend"></div><canvas id="norms"></canvas>
<h2>Singular-value spectrum</h2><div class="legend" id="spectrum-legend"></div><canvas id="spectrum"></canvas>
<h2>Training loss</h2><canvas id="curve"></canvas>
<section id="similarity-section" hidden><h2>Cosine similarity of expert updates</h2><canvas id="similarity"></canvas></section>
<section id="confusion-section" hidden><h2>Router confusion on held-out data, domain (rows) → routed expert (columns)</h2><canvas id="confusion"></canvas></section>
<section id="completions-section" hidden><h2>Completions on this domain's held-out files, from the last "moa eval --completions"</h2><vscode-data-grid id="completions" aria-label="Completion scores"></vscode-data-grid></section>
<section id="eval-section" hidden><h2>Held-out loss, domain (rows) × expert (columns), from the last "moa eval"</h2><canvas id="eval"></canvas></section>`);
    const subs = [
      panel.webview.onDidReceiveMessage((raw: unknown) => {
        if (parseInspectorMessage(raw)) this.send();
        else ws.log.warn(`inspector: ignored an invalid message ${JSON.stringify(raw)?.slice(0, 200)}`);
      }),
    ];
    panel.onDidDispose(() => {
      InspectorPanel.current = undefined;
      subs.forEach((s) => s.dispose());
    });
  }

  private send(): void {
    let msg: InspectorHostMessage;
    try {
      msg = { type: 'show', data: inspectExpert(this.ws.layout, this.ws.product, this.ws.config(), this.expert) };
    } catch (e) {
      msg = { type: 'error', message: errorMessage(e) };
    }
    void this.panel.webview.postMessage(msg);
  }
}
