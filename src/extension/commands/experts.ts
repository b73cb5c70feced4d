import * as vscode from 'vscode';
import { join } from 'node:path';
import { exportExpert, importPeftAdapter } from '../../core/adapters/peft';
import { readExpertState, setAttached } from '../../core/adapters/state';
import { pinExpert, unpinExpert } from '../../core/routing/pin';
import { listExperts, usableExperts } from '../../core/adapters/store';
import { readBaseModel, resolveBaseModelDir } from '../../core/models/base';
import { MoaError } from '../../core/util/errors';
import { InspectorPanel } from '../inspector';
import { expertNameOf, type App } from './app';

/** Inspect, attach, detach, pin, import and export experts. */
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
    const config = ws.config();
    const base = readBaseModel(config.baseModel, resolveBaseModelDir(config.baseModel, ws.product, ws.layout.root));
    const { dir, warnings } = importPeftAdapter(picked[0].fsPath, ws.layout.expertsDir, base);
    stateChanged();
    void vscode.window.showInformationMessage(`MoA: imported ${dir}`);
    for (const w of warnings) void vscode.window.showWarningMessage(`MoA: ${w}`);
  });
  cmd('moa.exportExpert', async (node?: unknown) => {
    const name = await pickExpert(node, 'MoA: export which expert?');
    if (!name) return;
    const dest = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, title: `MoA: folder to write ${name} into (PEFT layout)`, openLabel: 'Export here' });
    if (!dest?.[0]) return;
    const files = exportExpert(join(ws.layout.expertsDir, name), dest[0].fsPath);
    void vscode.window.showInformationMessage(`MoA: wrote ${files.length} files to ${dest[0].fsPath}`);
  });
}
