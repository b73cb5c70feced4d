import * as vscode from 'vscode';
import { watchMoaFolders } from '../core/adapters/watch';
import { errorMessage, MoaError } from '../core/util/errors';
import { buildWorkspaceData, initWorkspace } from '../core/workspace';
import { DashboardPanel, deviceLabel } from './dashboard';
import { InspectorPanel } from './inspector';
import { evaluate, formatEvalTable, saveEvalReport } from '../core/eval/evaluate';
import { listExperts } from '../core/adapters/store';
import { setRoutingMode } from '../core/config/edit';
import { exportExpert, importPeftAdapter } from '../core/adapters/peft';
import { readExpertState, setAttached, setPinned } from '../core/adapters/state';
import { readBaseModel, resolveBaseModelDir } from '../core/models/base';
import type { TrainerEvent } from '../core/trainer/events';
import { describeFailure, spawnTrainer } from '../core/trainer/process';
import { join } from 'node:path';
import type { RoutingMode } from '../core/config/schema';
import type { TrainStage } from '../core/trainer/train';
import { MoaInlineProvider } from './inline';
import { TrainingController } from './training';
import { ExpertsTree } from './tree';
import { RunsTree } from './runsTree';
import { MoaWorkspace } from './workspace';

/** Runs a command body, turning any failure into a notification with a way to the log. */
function guarded(log: vscode.LogOutputChannel, fn: (...args: never[]) => unknown): (...args: never[]) => Promise<void> {
  return async (...args: never[]) => {
    try {
      await fn(...args);
    } catch (e) {
      log.error(errorMessage(e));
      const hint = e instanceof MoaError && e.hint ? ` ${e.hint}` : '';
      const action = await vscode.window.showErrorMessage(`MoA: ${errorMessage(e).split('\n')[0]}${hint}`, 'Open Log');
      if (action) log.show();
    }
  };
}

/** A tree node (from a context menu) that names an expert, if it is one. */
function expertNameOf(node: unknown): string | undefined {
  const n = node as { kind?: string; expert?: { name?: string; status?: string } } | undefined;
  return n?.kind === 'expert' && n.expert?.status === 'ok' ? n.expert.name : undefined;
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
  const tree = new ExpertsTree(ws, training);
  const inline = new MoaInlineProvider(ws);
  const runs = new RunsTree(ws);
  context.subscriptions.push(training, inline, vscode.window.registerTreeDataProvider('moa.experts', tree), vscode.window.registerTreeDataProvider('moa.runs', runs));

  const watcher = watchMoaFolders(ws.layout.moaDir, () => {
    void vscode.commands.executeCommand('setContext', 'moa.hasConfig', ws.hasConfig());
    tree.refresh();
    inline.reset();
    inline.showRoute(vscode.window.activeTextEditor?.document);
  });
  context.subscriptions.push({ dispose: () => watcher.dispose() });
  const trainingItem = vscode.window.createStatusBarItem('moa.training', vscode.StatusBarAlignment.Left, 10);
  trainingItem.name = 'MoA training';
  trainingItem.command = 'moa.showDashboard';
  context.subscriptions.push(
    trainingItem,
    training.onEvent((e) => {
      if (e.type === 'hello') {
        tree.device = { label: e.gpu ? 'cuda' : 'cpu', detail: `torch ${e.torch}, ${deviceLabel(e)}`, ok: true };
        tree.refresh();
      }
      if (e.type !== 'step') return;
      trainingItem.text = `$(sync~spin) MoA ${e.stage} ${e.step}/${e.steps}`;
      trainingItem.tooltip = `loss ${e.expert} ${e.loss.toFixed(3)} · ${Math.round(e.tokens_per_s)} tok/s — open the dashboard`;
    }),
    training.onStatus((status) => {
      if (status === 'running' || status === 'stopping') {
        trainingItem.text = status === 'running' ? '$(sync~spin) MoA training' : '$(sync~spin) MoA stopping';
        trainingItem.show();
      } else trainingItem.hide();
    }),
    training.onStatus(() => {
      tree.refresh();
      runs.refresh();
    }),
    vscode.languages.registerInlineCompletionItemProvider({ scheme: 'file' }, inline),
    vscode.window.onDidChangeActiveTextEditor((ed) => inline.showRoute(ed?.document)),
  );

  const cmd = (id: string, fn: (...args: never[]) => unknown) => context.subscriptions.push(vscode.commands.registerCommand(id, guarded(log, fn)));
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
  const train = async (stages?: TrainStage[]) => {
    if (!vscode.workspace.isTrusted) {
      throw new MoaError('training is disabled in a restricted workspace: it runs Python on this folder\'s data.', 'Trust the workspace (Manage Workspace Trust) to train.');
    }
    const override = vscode.workspace.getConfiguration('moa').get<number>('trainSteps', 0);
    await training.start(override > 0 ? override : ws.config().training.steps, stages);
    DashboardPanel.show(context, ws, training);
    tree.refresh();
  };
  cmd('moa.trainAll', () => train());
  cmd('moa.trainDomain', async (node?: unknown) => {
    const fromTree = (node as { kind?: string; name?: string } | undefined)?.kind === 'domain' ? (node as { name: string }).name : undefined;
    const domain = fromTree ?? (await vscode.window.showQuickPick(ws.config().domains.map((d) => d.name), { title: 'MoA: train the expert of which domain?' }));
    if (!domain) return;
    if (!vscode.workspace.isTrusted) {
      throw new MoaError('training is disabled in a restricted workspace: it runs Python on this folder\'s data.', 'Trust the workspace (Manage Workspace Trust) to train.');
    }
    const override = vscode.workspace.getConfiguration('moa').get<number>('trainSteps', 0);
    await training.start(override > 0 ? override : ws.config().training.steps, ['experts'], [domain]);
    DashboardPanel.show(context, ws, training);
    tree.refresh();
  });
  cmd('moa.trainRouter', () => {
    if (listExperts(ws.layout.expertsDir).filter((e) => e.status === 'ok').length < 2) {
      throw new MoaError('the router chooses among experts: train at least two first', 'Run "MoA: Train All Experts".');
    }
    train(['router']);
  });
  cmd('moa.cancelTraining', () => training.stop());
  cmd('moa.showDashboard', () => DashboardPanel.show(context, ws, training));
  cmd('moa.refresh', () => {
    tree.refresh();
    runs.refresh();
  });
  cmd('moa.openRun', (runId?: string) => DashboardPanel.show(context, ws, training, typeof runId === 'string' ? runId : undefined));
  cmd('moa.showRouting', () => {
    const doc = vscode.window.activeTextEditor?.document;
    if (!doc) throw new MoaError('no file is open: open a file to see how it is routed');
    const route = inline.showRoute(doc);
    if (route) void vscode.window.showInformationMessage(`MoA routing (${route.mode}): ${route.reason}`);
  });
  cmd('moa.setRoutingMode', async () => {
    const current = ws.config().routing.mode;
    const items: (vscode.QuickPickItem & { mode: RoutingMode })[] = [
      { mode: 'label', label: 'label', description: 'the file\'s domain picks its expert (default)' },
      { mode: 'learned', label: 'learned', description: 'the trained router picks (falls back to labels until a router exists)' },
      { mode: 'pinned', label: 'pinned', description: 'one expert for every file (falls back to labels until one is pinned)' },
      { mode: 'off', label: 'off', description: 'base model only' },
    ];
    items.forEach((i) => i.mode === current && (i.detail = 'current'));
    const pick = await vscode.window.showQuickPick(items, { title: 'MoA: routing mode', placeHolder: `current: ${current}` });
    if (!pick) return;
    setRoutingMode(ws.layout.configFile, pick.mode);
    inline.reset();
    inline.showRoute(vscode.window.activeTextEditor?.document);
  });
  cmd('moa.inspectExpert', async (node?: unknown) => {
    let name = expertNameOf(node);
    if (!name) {
      const ok = listExperts(ws.layout.expertsDir).filter((e) => e.status === 'ok');
      if (ok.length === 0) throw new MoaError('no trained expert to inspect yet', 'Run "MoA: Train All Experts" first.');
      name = ok.length === 1 ? ok[0]!.name : (await vscode.window.showQuickPick(ok.map((e) => e.name), { title: 'MoA: inspect which expert?' }));
    }
    if (name) InspectorPanel.show(context, ws, name);
  });
  const pickExpert = async (node: unknown, title: string, filter: (name: string) => boolean = () => true): Promise<string | undefined> => {
    const named = expertNameOf(node);
    if (named) return named;
    const ok = listExperts(ws.layout.expertsDir).filter((e) => e.status === 'ok' && filter(e.name));
    if (ok.length === 0) throw new MoaError('no expert fits here', 'Train or import an expert first.');
    return vscode.window.showQuickPick(ok.map((e) => e.name), { title });
  };
  const stateChanged = () => {
    tree.refresh();
    inline.reset();
    inline.showRoute(vscode.window.activeTextEditor?.document);
  };
  cmd('moa.attachExpert', async (node?: unknown) => {
    const detached = readExpertState(ws.layout).detached;
    const name = await pickExpert(node, 'MoA: attach which expert?', (n) => detached.includes(n));
    if (name) setAttached(ws.layout, name, true), stateChanged();
  });
  cmd('moa.detachExpert', async (node?: unknown) => {
    const detached = readExpertState(ws.layout).detached;
    const name = await pickExpert(node, 'MoA: detach which expert?', (n) => !detached.includes(n));
    if (name) setAttached(ws.layout, name, false), stateChanged();
  });
  cmd('moa.pinExpert', async (node?: unknown) => {
    const name = await pickExpert(node, 'MoA: pin which expert for every file?');
    if (!name) return;
    setPinned(ws.layout, name);
    if (ws.config().routing.mode !== 'pinned') setRoutingMode(ws.layout.configFile, 'pinned');
    stateChanged();
  });
  cmd('moa.unpinExpert', () => {
    setPinned(ws.layout, null);
    if (ws.config().routing.mode === 'pinned') setRoutingMode(ws.layout.configFile, 'label');
    stateChanged();
  });
  cmd('moa.importAdapter', async () => {
    const picked = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, title: 'MoA: a PEFT LoRA folder (adapter_config.json + adapter_model.safetensors)', openLabel: 'Import' });
    if (!picked?.[0]) return;
    const config = ws.config();
    const base = readBaseModel(config.baseModel, resolveBaseModelDir(config.baseModel, ws.product, ws.layout.root));
    const dir = importPeftAdapter(picked[0].fsPath, ws.layout.expertsDir, base);
    stateChanged();
    void vscode.window.showInformationMessage(`MoA: imported ${dir}`);
  });
  cmd('moa.exportExpert', async (node?: unknown) => {
    const name = await pickExpert(node, 'MoA: export which expert?');
    if (!name) return;
    const dest = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, title: `MoA: folder to write ${name} into (PEFT layout)`, openLabel: 'Export here' });
    if (!dest?.[0]) return;
    const files = exportExpert(join(ws.layout.expertsDir, name), dest[0].fsPath);
    void vscode.window.showInformationMessage(`MoA: wrote ${files.length} files to ${dest[0].fsPath}`);
  });
  cmd('moa.evaluate', async () => {
    if (!vscode.workspace.isTrusted) throw new MoaError('evaluation may export the model with Python, which a restricted workspace does not allow');
    const python = await ws.python();
    await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'MoA: evaluating experts on held-out data' }, async () => {
      const report = await evaluate(ws.layout, ws.product, ws.config(), python, { windows: 16, onLog: (l) => ws.log.info(`[eval] ${l}`) });
      saveEvalReport(ws.layout, report);
      ws.log.info(`moa eval\n${formatEvalTable(report)}`);
      const label = report.domains.map((d) => report.label[d] ?? 0);
      const base = report.domains.map((d) => report.base[d] ?? 0);
      const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
      const action = await vscode.window.showInformationMessage(`MoA: held-out loss ${avg(label).toFixed(3)} with routed experts vs ${avg(base).toFixed(3)} for the base model.`, 'Show Table');
      if (action) ws.log.show();
    });
  });
  cmd('moa.openConfig', () => vscode.window.showTextDocument(vscode.Uri.file(ws.layout.configFile)));
  cmd('moa.doctor', async () => {
    if (!vscode.workspace.isTrusted) throw new MoaError('the environment check runs Python, which a restricted workspace does not allow');
    const python = await ws.python();
    let hello: (TrainerEvent & { type: 'hello' }) | undefined;
    const exit = await spawnTrainer({ python, trainerDir: ws.product.trainerDir, command: 'doctor', cwd: ws.layout.root, onEvent: (e) => e.type === 'hello' && (hello = e) }).exited;
    if (!exit.done || !hello) throw new MoaError(`environment check with ${python} failed: ${describeFailure(exit)}`);
    const device = hello.gpu ? `${hello.gpu} (${hello.gpu_memory_gb} GB)` : 'no CUDA GPU: training runs on the CPU';
    ws.log.info(`doctor: python ${hello.python} at ${python}, torch ${hello.torch}, ${device}`);
    tree.device = { label: hello.gpu ? 'cuda' : 'cpu', detail: `Python ${hello.python} (${python}), torch ${hello.torch}, ${device}`, ok: true };
    tree.refresh();
    void vscode.window.showInformationMessage(`MoA: Python ${hello.python}, torch ${hello.torch}, ${device}.`);
  });
  inline.showRoute(vscode.window.activeTextEditor?.document);
  log.info(`activated in ${(performance.now() - started).toFixed(1)} ms`);
}

export function deactivate(): void {
  // Everything is in context.subscriptions, which VS Code disposes: the trainer is asked to stop.
}
