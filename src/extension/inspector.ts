import * as vscode from 'vscode';
import { inspectExpert } from '../core/adapters/inspection';
import { receiver } from '../core/util/channel';
import { errorMessage } from '../core/util/errors';
import { INSPECTOR_BODY } from '../../webview/inspector/page';
import { parseInspectorMessage, type InspectorHostMessage } from '../../webview/inspector/protocol';
import { webviewHtml, webviewOptions } from './webviewHtml';
import type { MoaWorkspace } from './workspace';

/** The expert inspector's host: computes the statistics in core and sends them to the app. */
export class InspectorPanel {
  private static current?: InspectorPanel;

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
    private expert: string,
  ) {
    panel.webview.html = webviewHtml(panel.webview, context.extensionUri, 'inspector', 'MoA Expert', { bundledCss: false }, INSPECTOR_BODY);
    const sub = panel.webview.onDidReceiveMessage(receiver('inspector', parseInspectorMessage, () => this.send(), (line) => ws.log.warn(line)));
    panel.onDidDispose(() => {
      InspectorPanel.current = undefined;
      sub.dispose();
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
