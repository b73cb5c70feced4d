import * as vscode from 'vscode';
import { totalmem } from 'node:os';
import { isAbsolute, join, relative, sep } from 'node:path';
import { evaluate, formatEvalTable, saveEvalReport } from '../../core/eval/evaluate';
import type { TrainerEvent } from '../../core/trainer/events';
import { describeFailure, spawnTrainer } from '../../core/trainer/process';
import { addDomainsFor } from '../../core/config/edit';
import { readManifest } from '../../core/data/shards';
import { errorMessage, MoaError } from '../../core/util/errors';
import { withCancellableProgress } from '../abort';
import { deviceKind, deviceLabel } from '../../core/trainer/device';
import { findBasePython, nvidiaGpus, setupTrainerEnv, trainerEnvDir } from '../../core/trainer/setup';
import { baseChoices, describeBase, formatBytes, setBaseModel, workspaceTrainingMemory, type BaseDescription } from '../../core/models/choice';
import { staleForBase } from '../../core/adapters/catalog';
import { initWorkspace } from '../../core/workspace';
import { buildDatasetsInChild } from '../../core/data/buildProcess';
import type { App } from './app';
import { setInferenceWeights } from '../../core/config/edit';
import type { WeightType } from '../../core/config/schema';

/** From this size the editor suggests int8 weights for completions (bench/core/RESULTS.md). */
const INT8_SUGGESTED_FROM = 100e6;

/** Initialise, datasets, evaluation, config and the environment check. */
export function registerWorkspaceCommands({ ws, tree, runs, inline, cmd }: App): void {
  cmd('moa.init', () => {
    const { config } = initWorkspace(ws.layout);
    void vscode.commands.executeCommand('setContext', 'moa.hasConfig', true);
    tree.refresh();
    void vscode.window.showInformationMessage(`MoA: found ${config.domains.length} domains (${config.domains.map((d) => d.name).join(', ')}).`);
  });
  cmd('moa.makeDomain', async () => {
    const loose = readManifest(ws.layout)?.unassignedFiles ?? [];
    if (loose.length === 0) throw new MoaError('every file of the datasets is in a domain already', 'Run "MoA: Build Datasets" to look again.');
    const added = addDomainsFor(ws.layout.configFile, ws.layout.root, loose);
    tree.refresh();
    const action = await vscode.window.showInformationMessage(`MoA: added domain${added.length > 1 ? 's' : ''} ${added.map((d) => `${d.name} (${d.include.join(' ')})`).join(', ')} to .moa/moa.json. Build the datasets now?`, 'Build Datasets', 'Open Config');
    if (action === 'Build Datasets') await vscode.commands.executeCommand('moa.buildData');
    else if (action === 'Open Config') await vscode.commands.executeCommand('moa.openConfig');
  });
  cmd('moa.buildData', () =>
    withCancellableProgress('MoA: building datasets', async (signal) => {
      const m = await buildDatasetsInChild({ node: process.execPath, builder: join(ws.product.root, 'dist', 'dataBuild.js'), productRoot: ws.product.root, root: ws.layout.root, signal });
      tree.refresh();
      void vscode.window.showInformationMessage(`MoA: ${m.domains.map((d) => `${d.domain} ${d.trainTokens + d.valTokens} tokens`).join(', ')}`);
    }),
  );
  cmd('moa.refresh', () => {
    tree.refresh();
    runs.refresh();
  });
  cmd('moa.evaluate', async () => {
    if (!vscode.workspace.isTrusted) throw new MoaError('evaluation may export the model with Python, which a restricted workspace does not allow');
    const python = await ws.python();
    await withCancellableProgress('MoA: evaluating experts on held-out data', async (signal) => {
      const report = await evaluate(ws.layout, ws.product, ws.config(), python, { windows: 16, onLog: (l) => ws.log.info(`[eval] ${l}`), signal });
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
    const exit = await spawnTrainer({ python, trainerDir: ws.product.trainerDir, command: 'doctor', onEvent: (e) => e.type === 'hello' && (hello = e) }).exited;
    if (!exit.done || !hello) {
      const why = describeFailure(exit);
      // Kept in the tree (and across reloads) so what is missing stays in sight until it is fixed.
      tree.setDevice({ label: 'Python not ready', detail: `${python}: ${why}` });
      throw new MoaError(`environment check with ${python} failed: ${why}`);
    }
    const device = hello.gpu ? deviceLabel(hello) : `no CUDA GPU: training runs on the CPU, ${deviceLabel(hello, totalmem())}`;
    ws.log.info(`doctor: python ${hello.python} at ${python}, torch ${hello.torch}, ${device}`);
    tree.setDevice({ label: deviceKind(hello), detail: `Python ${hello.python} (${python}), torch ${hello.torch}, ${device}` });
    void vscode.window.showInformationMessage(`MoA: Python ${hello.python}, torch ${hello.torch}, ${device}.`);
  });
  cmd('moa.setupEnvironment', async () => {
    if (!vscode.workspace.isTrusted) throw new MoaError('the setup runs Python and pip, which a restricted workspace does not allow');
    // A Python 3.10+ found on PATH, or the one the user points at when there is none.
    let python: string | undefined;
    try {
      findBasePython();
    } catch (e) {
      const choose = await vscode.window.showWarningMessage(`MoA: ${errorMessage(e)}`, 'Choose Python…');
      if (!choose) return;
      const picked = await vscode.window.showOpenDialog({ canSelectFiles: true, canSelectFolders: false, title: 'MoA: a Python 3.10 or newer to make the trainer environment from', openLabel: 'Use this Python' });
      if (!picked?.[0]) return;
      python = findBasePython(picked[0].fsPath).python;
    }
    const gpus = nvidiaGpus();
    const pick = await vscode.window.showQuickPick([
      { label: gpus > 0 ? 'CUDA build of torch' : 'CPU build of torch', build: 'auto' as const, detail: gpus > 0 ? `nvidia-smi lists ${gpus} NVIDIA GPU${gpus > 1 ? 's' : ''}: train on ${gpus > 1 ? 'them' : 'it'}` : 'nvidia-smi finds no NVIDIA GPU: training runs on the CPU' },
      { label: gpus > 0 ? 'CPU build of torch' : 'CUDA build of torch', build: gpus > 0 ? 'cpu' as const : 'cuda' as const, detail: gpus > 0 ? 'smaller; training ignores the GPU' : 'for a GPU this machine does not show yet' },
    ], { title: `MoA: set up the trainer's Python environment in ${trainerEnvDir()}` });
    if (!pick) return;
    const result = await withCancellableProgress('MoA: setting up the trainer environment (pip output in the log)', (signal, progress) =>
      setupTrainerEnv({
        dir: trainerEnvDir(), build: pick.build, requirements: join(ws.product.trainerDir, 'requirements.txt'), signal, ...(python ? { python } : {}),
        onLine: (l) => {
          ws.log.info(`[setup] ${l}`);
          if (/^(creating|installing|Collecting|Installing collected)/.test(l)) progress.report({ message: l.slice(0, 80) });
        },
      }));
    ws.log.info(`setup: ${result.python}, torch ${result.torch}: ${result.verdict}`);
    void vscode.window.showInformationMessage(`MoA: trainer environment ready, torch ${result.torch}: ${result.verdict}`);
    await vscode.commands.executeCommand('moa.doctor');
  });
  cmd('moa.chooseWeights', async (given?: unknown) => {
    const current = ws.config().inference.weights;
    const choices: { label: string; detail: string; value: WeightType }[] = [
      { label: 'f32', detail: 'float weights: exactly the trained model', value: 'f32' },
      { label: 'int8', detail: 'int8 blocks of 32: 1.2–2.7× faster decode on 135M–0.5B models, held-out loss within 0.1 % (bench/core/RESULTS.md)', value: 'int8' },
      { label: 'int4', detail: 'int4 blocks of 32: faster still on large models, held-out loss within about 1.5 %', value: 'int4' },
    ];
    const items = choices.map((i) => ({ ...i, description: i.value === current ? '(current)' : '' }));
    const weights = typeof given === 'string' && items.some((i) => i.value === given) ? (given as WeightType) : (await vscode.window.showQuickPick(items, { title: 'MoA: the base model\'s weights for completions (the experts stay float)' }))?.value;
    if (!weights || weights === current) return;
    setInferenceWeights(ws.layout.configFile, weights);
    inline.reset();
    void vscode.window.showInformationMessage(`MoA: completions use ${weights} weights; the model is exported again on the next completion.`);
  });
  cmd('moa.chooseBaseModel', async () => {
    const config = ws.config();
    const fmt = (d: BaseDescription) => {
      const mem = workspaceTrainingMemory(d.info, config, tree.device?.label.includes('cuda') ? 2 : 4);
      return `${d.info.modelType} · ${(d.info.parameters / 1e6).toFixed(1)}M params · ${formatBytes(d.sizeBytes)} · ${d.fim ? `FIM (${d.fim})` : 'no FIM tokens'} · training ≈ ${formatBytes(mem.total)} for ${config.domains.length} experts`;
    };
    const items: (vscode.QuickPickItem & { value: string })[] = [
      // The built-in model, then the supported models already in the Hugging Face cache.
      ...baseChoices(ws.product, ws.layout.root).map((c) => ({ label: c.name, description: config.baseModel === c.name ? '(current)' : '', detail: fmt(c.description), value: c.name })),
      { label: 'A Hugging Face model folder…', detail: 'config.json, model.safetensors (or shards) and tokenizer.json: Llama, Qwen2 or Mistral', value: '' },
    ];
    const pick = await vscode.window.showQuickPick(items, { title: `MoA: base model (now ${config.baseModel})` });
    if (!pick) return;
    let name = pick.value;
    if (!name) {
      const folder = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, title: 'MoA: a Hugging Face model folder', openLabel: 'Use as Base Model' });
      if (!folder?.[0]) return;
      const rel = relative(ws.layout.root, folder[0].fsPath);
      name = rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel.split(sep).join('/') : folder[0].fsPath;
    }
    if (name === config.baseModel) return;
    const chosen = describeBase(name, ws.product, ws.layout.root); // refuses what is not a model, before the config changes
    setBaseModel(ws.layout.configFile, name);
    const stale = staleForBase(ws.layout, name);
    tree.refresh();
    inline.reset();
    ws.log.info(`base model: ${name}: ${fmt(chosen)}`);
    // A real-size base serves completions much faster from int8 weights, at no measured loss.
    if (chosen.info.parameters >= INT8_SUGGESTED_FROM && config.inference.weights === 'f32') {
      void vscode.window.showInformationMessage(`MoA: ${name} has ${(chosen.info.parameters / 1e6).toFixed(0)}M parameters: int8 weights decode 1.2–2.7× faster than f32 with the same held-out loss (within 0.1 %).`, 'Use int8 Weights').then((a) => a && vscode.commands.executeCommand('moa.chooseWeights', 'int8'));
    }
    void vscode.window.showInformationMessage(`MoA: base model is now ${name} (${fmt(chosen)}).${stale.length ? ` ${stale.length} expert(s) belong to the previous base and are stale: ${stale.join(', ')}. Retrain to use them with this one.` : ''}`, ...(stale.length ? ['Train All Experts'] : [])).then((a) => a && vscode.commands.executeCommand('moa.trainAll'));
  });
}
