import * as vscode from 'vscode';
import { join } from 'node:path';
import { exportExpert, importPeftAdapter } from '../../core/adapters/peft';
import { MERGE_METHODS, mergeExperts, type MergeMethod } from '../../core/adapters/merge';
import { readExpertState, setAttached } from '../../core/adapters/state';
import { pinExpert, unpinExpert } from '../../core/routing/pin';
import { listExperts, usableExperts } from '../../core/adapters/store';
import { configuredBase, resolveBaseModelDir } from '../../core/models/base';
import { exportGgufOffThread } from '../../core/gguf/exportProtocol';
import { MoaError } from '../../core/util/errors';
import { InspectorPanel } from '../inspector';
import { SAFE_NAME } from '../../core/names';
import { withCancellableProgress } from '../abort';
import { expertNameOf, type App } from './app';

/** Inspect, attach, detach, pin, import, export and merge experts. */
export function registerExpertCommands({ context, ws, tree, inline, cmd }: App): void {
  cmd('moa.inspectExpert', async (node?: unknown) => {
    let name = expertNameOf(node);
    if (!name) {
      const ok = usableExperts(ws.layout.expertsDir);
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
    inline.showActiveRoute();
  };
  // Attach offers the detached experts, detach the attached ones.
  const attachOrDetach = (attach: boolean) => async (node?: unknown) => {
    const detached = readExpertState(ws.layout).detached;
    const name = await pickExpert(node, `MoA: ${attach ? 'attach' : 'detach'} which expert?`, (n) => detached.includes(n) === attach);
    if (name) setAttached(ws.layout, name, attach), stateChanged();
  };
  cmd('moa.attachExpert', attachOrDetach(true));
  cmd('moa.detachExpert', attachOrDetach(false));
  cmd('moa.pinExpert', async (node?: unknown) => {
    const name = await pickExpert(node, 'MoA: pin which expert for every file?');
    if (!name) return;
    pinExpert(ws.layout, name);
    stateChanged();
  });
  cmd('moa.unpinExpert', () => {
    unpinExpert(ws.layout);
    stateChanged();
  });
  cmd('moa.importAdapter', async () => {
    const picked = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, title: 'MoA: a PEFT LoRA folder (adapter_config.json + adapter_model.safetensors)', openLabel: 'Import' });
    if (!picked?.[0]) return;
    const base = configuredBase(ws.config().baseModel, ws.product, ws.layout.root);
    const { dir, warnings } = importPeftAdapter(picked[0].fsPath, ws.layout.expertsDir, base);
    stateChanged();
    void vscode.window.showInformationMessage(`MoA: imported ${dir}`);
    for (const w of warnings) void vscode.window.showWarningMessage(`MoA: ${w}`);
  });
  cmd('moa.exportExpert', async (node?: unknown) => {
    const name = await pickExpert(node, 'MoA: export which expert?');
    if (!name) return;
    const format = await vscode.window.showQuickPick(
      [
        { label: 'PEFT folder', description: 'adapter_config.json + adapter_model.safetensors: peft, LoRAX, vLLM', value: 'peft' as const },
        { label: 'GGUF LoRA adapter', description: `${name}.gguf for llama.cpp (with the base from "moa base export-gguf")`, value: 'gguf' as const },
        { label: 'Ollama', description: 'the base and the expert as GGUF, and a Modelfile (one adapter per Ollama model: no routing)', value: 'ollama' as const },
      ],
      { title: `MoA: export ${name} as` },
    );
    if (!format) return;
    const dest = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, title: `MoA: folder to write ${name} into (${format.label})`, openLabel: 'Export here' });
    if (!dest?.[0]) return;
    const expertDir = join(ws.layout.expertsDir, name);
    if (format.value === 'peft') {
      const files = exportExpert(expertDir, dest[0].fsPath);
      return void vscode.window.showInformationMessage(`MoA: wrote ${files.length} files to ${dest[0].fsPath}`);
    }
    const config = ws.config();
    const baseDir = resolveBaseModelDir(config.baseModel, ws.product, ws.layout.root);
    const out = await withCancellableProgress(`MoA: writing ${name} as ${format.label}…`, (signal) =>
      exportGgufOffThread(join(ws.product.root, 'dist', 'ggufExport.js'), { format: format.value, expertDir, name, baseName: config.baseModel, baseDir, dir: dest[0]!.fsPath, type: 'f16', force: false }, signal));
    ws.log.info(`export ${name}: ${out.files.join(', ')}${out.create ? `; then: ${out.create}` : ''}`);
    const copy = out.create ? await vscode.window.showInformationMessage(`MoA: wrote ${out.files.length} files. Then: ${out.create}`, 'Copy Command') : void vscode.window.showInformationMessage(`MoA: wrote ${out.files[0]}`);
    if (copy && out.create) await vscode.env.clipboard.writeText(out.create);
  });
  cmd('moa.mergeExperts', async (node?: unknown) => {
    if (!vscode.workspace.isTrusted) throw new MoaError('merging runs the Python trainer, which a restricted workspace does not allow');
    const ok = usableExperts(ws.layout.expertsDir).map((e) => e.name);
    if (ok.length < 2) throw new MoaError('merging needs at least two experts', 'Train or import another expert first.');
    const first = expertNameOf(node);
    const picked = await vscode.window.showQuickPick(ok.map((n) => ({ label: n, picked: n === first })), { title: 'MoA: merge which experts? (two or more)', canPickMany: true });
    if (!picked || picked.length < 2) return;
    const methods: Record<MergeMethod, string> = {
      linear: 'A and B averaged with the weights (one rank; fast, approximate)', cat: 'ranks concatenated: exactly the weighted sum of the updates',
      svd: 'the weighted sum of the updates, truncated to a rank by SVD', ties: 'TIES: keep the largest entries, agree on signs',
      dare_linear: 'DARE: random drop and rescale, then linear', dare_ties: 'DARE, then TIES sign agreement', magnitude_prune: 'keep the largest entries, then linear',
      ties_svd: 'TIES on the updates, then SVD', dare_linear_svd: 'DARE on the updates, then SVD', dare_ties_svd: 'DARE + TIES on the updates, then SVD', magnitude_prune_svd: 'magnitude pruning on the updates, then SVD',
    };
    const method = await vscode.window.showQuickPick(MERGE_METHODS.map((m) => ({ label: m, detail: methods[m] })), { title: 'MoA: how to merge (peft\'s add_weighted_adapter)' });
    if (!method) return;
    const weightsText = await vscode.window.showInputBox({
      title: `MoA: weights for ${picked.map((p) => p.label).join(', ')}`, value: picked.map(() => (1 / picked.length).toFixed(2)).join(', '),
      validateInput: (v) => (v.split(',').length === picked.length && v.split(',').every((x) => x.trim() !== '' && Number.isFinite(Number(x))) ? undefined : `${picked.length} numbers, comma-separated`),
    });
    if (weightsText === undefined) return;
    let density: number | undefined;
    if (/ties|dare|magnitude/.test(method.label)) {
      const d = await vscode.window.showInputBox({ title: 'MoA: density (the fraction of entries kept)', value: '0.5', validateInput: (v) => (Number(v) >= 0 && Number(v) <= 1 && v.trim() !== '' ? undefined : 'a number in [0, 1]') });
      if (d === undefined) return;
      density = Number(d);
    }
    const name = await vscode.window.showInputBox({ title: 'MoA: name of the merged expert', value: picked.map((p) => p.label).join('-').slice(0, 60), validateInput: (v) => (SAFE_NAME.test(v) ? (ok.includes(v) ? `"${v}" exists` : undefined) : 'lowercase letters, digits, "-", "_"') });
    if (!name) return;
    const base = configuredBase(ws.config().baseModel, ws.product, ws.layout.root);
    const python = await ws.python();
    const dir = await withCancellableProgress(`MoA: merging ${picked.length} experts (${method.label})`, (signal) =>
      mergeExperts(ws.layout, ws.product, base, python, {
        name, experts: picked.map((p) => p.label), method: method.label as MergeMethod, weights: weightsText.split(',').map(Number), ...(density !== undefined ? { density } : {}),
      }, signal));
    stateChanged();
    void vscode.window.showInformationMessage(`MoA: merged into ${dir}`, 'Pin It').then((a) => a && (pinExpert(ws.layout, name), stateChanged()));
  });
}
