import * as vscode from 'vscode';
import { watchMoaFolders } from '../core/adapters/watch';
import { errorMessage, MoaError } from '../core/util/errors';
import { buildWorkspaceData, initWorkspace } from '../core/workspace';
import { DashboardPanel } from './dashboard';
import { MoaInlineProvider } from './inline';
import { TrainingController } from './training';
import { ExpertsTree } from './tree';
import { MoaWorkspace } from './workspace';

/** Runs a command body, turning any failure into a notification with a way to the log. */
function guarded(log: vscode.LogOutputChannel, fn: () => unknown): () => Promise<void> {
  return async () => {
    try {
      await fn();
    } catch (e) {
      log.error(errorMessage(e));
      const hint = e instanceof MoaError && e.hint ? ` ${e.hint}` : '';
      const action = await vscode.window.showErrorMessage(`MoA: ${errorMessage(e).split('\n')[0]}${hint}`, 'Open Log');
      if (action) log.show();
    }
  };
}

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('MoA Studio', { log: true });
  context.subscriptions.push(log);
  const ws = MoaWorkspace.fromWindow(context.extensionPath, log);
  if (!ws) {
    log.info('no local workspace folder: MoA Studio stays idle');
    return;
  }
  void vscode.commands.executeCommand('setContext', 'moa.hasConfig', ws.hasConfig());
  const training = new TrainingController(ws);
  const tree = new ExpertsTree(ws, training);
  const inline = new MoaInlineProvider(ws);
  context.subscriptions.push(training, inline, vscode.window.registerTreeDataProvider('moa.experts', tree));

  const watcher = watchMoaFolders([ws.layout.moaDir], () => {
    void vscode.commands.executeCommand('setContext', 'moa.hasConfig', ws.hasConfig());
    tree.refresh();
    inline.reset();
    inline.showRoute(vscode.window.activeTextEditor?.document);
  });
  context.subscriptions.push({ dispose: () => watcher.dispose() });
  context.subscriptions.push(
    training.onStatus(() => tree.refresh()),
    vscode.languages.registerInlineCompletionItemProvider({ scheme: 'file' }, inline),
    vscode.window.onDidChangeActiveTextEditor((ed) => inline.showRoute(ed?.document)),
  );

  const cmd = (id: string, fn: () => unknown) => context.subscriptions.push(vscode.commands.registerCommand(id, guarded(log, fn)));
  cmd('moa.init', () => {
    const { config } = initWorkspace(ws.layout);
    void vscode.commands.executeCommand('setContext', 'moa.hasConfig', true);
    tree.refresh();
    void vscode.window.showInformationMessage(`MoA: found ${config.domains.length} domains (${config.domains.map((d) => d.name).join(', ')}).`);
  });
  cmd('moa.buildData', () =>
    vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'MoA: building datasets' }, async () => {
      const m = buildWorkspaceData(ws.layout, ws.product);
      tree.refresh();
      void vscode.window.showInformationMessage(`MoA: ${m.domains.map((d) => `${d.domain} ${d.trainTokens + d.valTokens} tokens`).join(', ')}`);
    }),
  );
  cmd('moa.trainAll', () => {
    if (!vscode.workspace.isTrusted) {
      throw new MoaError('training is disabled in a restricted workspace: it runs Python on this folder\'s data.', 'Trust the workspace (Manage Workspace Trust) to train.');
    }
    const steps = vscode.workspace.getConfiguration('moa').get<number>('trainSteps', 200);
    training.start(steps);
    DashboardPanel.show(context, ws, training);
    tree.refresh();
  });
  cmd('moa.cancelTraining', () => training.stop());
  cmd('moa.showDashboard', () => DashboardPanel.show(context, ws, training));
  cmd('moa.refresh', () => tree.refresh());
  inline.showRoute(vscode.window.activeTextEditor?.document);
}

export function deactivate(): void {
  // Everything is in context.subscriptions, which VS Code disposes: the trainer is asked to stop.
}
