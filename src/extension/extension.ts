import * as vscode from 'vscode';
import { totalmem } from 'node:os';
import { watchMoaFolders } from '../core/adapters/watch';
import { Cancelled, errorMessage, MoaError } from '../core/util/errors';
import { errorActions } from './errorActions';
import type { App } from './commands/app';
import { registerExpertCommands } from './commands/experts';
import { registerRoutingCommands } from './commands/routing';
import { registerTrainingCommands } from './commands/training';
import { registerWorkspaceCommands } from './commands/workspace';
import { deviceKind, deviceLabel } from '../core/trainer/device';
import { DatasetSync } from './dataSync';
import { MoaInlineProvider } from './inline';
import { ServeController } from './serve';
import { RunsTree } from './runsTree';
import { TrainingController } from './training';
import { ExpertsTree } from './tree';
import { MoaWorkspace } from './workspace';

/** Runs a command body, turning any failure into a notification with a way to the log (or to the fix). */
function guarded(log: vscode.LogOutputChannel, fn: (...args: never[]) => unknown): (...args: never[]) => Promise<void> {
  return async (...args: never[]) => {
    try {
      await fn(...args);
    } catch (e) {
      // The user cancelled: what was there before is kept, so this is news for the log, not an error.
      if (e instanceof Cancelled) return void log.info(e.hint ? `${e.message}. ${e.hint}` : e.message);
      log.error(errorMessage(e));
      const hint = e instanceof MoaError && e.hint ? ` ${e.hint}` : '';
      const { actions, run } = errorActions(e, log);
      await run(await vscode.window.showErrorMessage(`MoA: ${errorMessage(e).split('\n')[0]}${hint}`, ...actions));
    }
  };
}

export function activate(context: vscode.ExtensionContext): void {
  const started = performance.now();
  const log = vscode.window.createOutputChannel('MoA Studio', { log: true });
  context.subscriptions.push(log);
  const ws = MoaWorkspace.fromWindow(context.extensionPath, log);
  if (!ws) {
    log.info('no local workspace folder: MoA Studio stays idle');
    return;
  }
  void vscode.commands.executeCommand('setContext', 'moa.hasConfig', ws.hasConfig());
  const training = new TrainingController(ws);
  const tree = new ExpertsTree(ws, training, context.workspaceState);
  const inline = new MoaInlineProvider(ws);
  const runs = new RunsTree(ws);
  const serve = new ServeController(ws);
  context.subscriptions.push(training, inline, serve, vscode.window.registerTreeDataProvider('moa.experts', tree), vscode.window.registerTreeDataProvider('moa.runs', runs));

  const dataSync = new DatasetSync(ws);
  context.subscriptions.push(dataSync);
  const watcher = watchMoaFolders(ws.layout.moaDir, () => {
    void vscode.commands.executeCommand('setContext', 'moa.hasConfig', ws.hasConfig());
    dataSync.sync();
    tree.refresh();
    inline.reset();
    serve.reset();
    inline.showActiveRoute();
  });
  context.subscriptions.push({ dispose: () => watcher.dispose() });
  const trainingItem = vscode.window.createStatusBarItem('moa.training', vscode.StatusBarAlignment.Left, 10);
  trainingItem.name = 'MoA training';
  trainingItem.command = 'moa.showDashboard';
  context.subscriptions.push(
    trainingItem,
    training.onEvent((e) => {
      if (e.type === 'hello') tree.setDevice({ label: deviceKind(e), detail: `torch ${e.torch}, ${deviceLabel(e, totalmem())}` });
      if (e.type !== 'step') return;
      trainingItem.text = `$(sync~spin) MoA ${e.stage} ${e.step}/${e.steps}`;
      trainingItem.tooltip = `loss ${e.expert} ${e.loss.toFixed(3)} · ${Math.round(e.tokens_per_s)} tok/s — open the dashboard`;
    }),
    training.onStatus((status) => {
      if (status === 'running' || status === 'stopping') {
        trainingItem.text = status === 'running' ? '$(sync~spin) MoA training' : '$(sync~spin) MoA stopping';
        trainingItem.show();
      } else trainingItem.hide();
      tree.refresh();
      runs.refresh();
    }),
    vscode.languages.registerInlineCompletionItemProvider({ scheme: 'file' }, inline),
    vscode.window.onDidChangeActiveTextEditor((ed) => inline.showRoute(ed?.document, ed?.selection.active)),
    onCursorSettled((ed) => inline.showRoute(ed.document, ed.selection.active)),
  );

  const cmd = (id: string, fn: (...args: never[]) => unknown) => void context.subscriptions.push(vscode.commands.registerCommand(id, guarded(log, fn)));
  const app: App = { context, ws, training, tree, runs, inline, serve, cmd };
  registerWorkspaceCommands(app);
  registerTrainingCommands(app);
  registerRoutingCommands(app);
  registerExpertCommands(app);
  inline.showActiveRoute();
  // After activation: the first scan of a large workspace must not delay the window.
  setTimeout(() => dataSync.sync(), 1000);
  // The host thread never runs a model: onnxruntime-node belongs to the completion worker only.
  const ort = Object.keys(require.cache).some((k) => k.includes('onnxruntime-node'));
  log.info(`activated in ${(performance.now() - started).toFixed(1)} ms (onnxruntime-node loaded: ${ort ? 'yes' : 'no'})`);
}

export function deactivate(): void {
  // Everything is in context.subscriptions, which VS Code disposes: the trainer is asked to stop.
}

/**
 * The cursor stopped moving (after 200 ms): where the route can change inside a file (learned and
 * auto routing see fenced blocks), the status bar follows it without work on every keystroke.
 */
function onCursorSettled(fn: (ed: vscode.TextEditor) => void): vscode.Disposable {
  let timer: NodeJS.Timeout | undefined;
  const sub = vscode.window.onDidChangeTextEditorSelection((e) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(e.textEditor), 200);
  });
  return { dispose: () => (clearTimeout(timer), sub.dispose()) };
}
