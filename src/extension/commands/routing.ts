import * as vscode from 'vscode';
import { setRoutingMode } from '../../core/config/edit';
import type { RoutingMode } from '../../core/config/schema';
import { MoaError } from '../../core/util/errors';
import type { App } from './app';

/** How files are routed to experts, and what the current file gets. */
export function registerRoutingCommands({ ws, inline, cmd }: App): void {
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
}
