import * as vscode from 'vscode';
import { join } from 'node:path';
import { completionSpot } from '../../core/data/completionSpot';
import { readManifest } from '../../core/data/shards';
import { setRoutingMode } from '../../core/config/edit';
import type { RoutingMode } from '../../core/config/schema';
import { MoaError } from '../../core/util/errors';
import { readExpertState } from '../../core/adapters/state';
import { usableExperts } from '../../core/adapters/store';
import type { App } from './app';

/** How files are routed to experts, and what the current file gets. */
export function registerRoutingCommands({ ws, inline, serve, cmd }: App): void {
  // moa serve for other tools on this machine (Continue, scripts): the URL to paste, and a way to stop.
  cmd('moa.startServer', async () => {
    const url = await serve.start();
    const copy = await vscode.window.showInformationMessage(`MoA: serving OpenAI-compatible completions at ${url} (models: moa, base, experts)`, 'Copy URL');
    if (copy) await vscode.env.clipboard.writeText(url);
  });
  cmd('moa.stopServer', async () => {
    const stopped = await serve.stop();
    void vscode.window.showInformationMessage(stopped ? 'MoA: completion server stopped' : 'MoA: the completion server is not running');
  });
  cmd('moa.showRouting', () => {
    if (!vscode.window.activeTextEditor) throw new MoaError('no file is open: open a file to see how it is routed');
    const route = inline.showActiveRoute();
    if (route) void vscode.window.showInformationMessage(`MoA routing (${route.mode}): ${route.reason}`);
  });
  // The status-bar item's menu: what serves this file, and the two ways to change it.
  cmd('moa.routingMenu', async () => {
    const state = readExpertState(ws.layout);
    const experts = usableExperts(ws.layout.expertsDir).map((e) => e.name);
    type Item = vscode.QuickPickItem & { run: () => unknown };
    const items: Item[] = [
      { label: '$(list-selection) Set Routing Mode…', description: `now ${ws.config().routing.mode}`, run: () => vscode.commands.executeCommand('moa.setRoutingMode') },
      { label: '$(info) Show Routing for Current File', run: () => vscode.commands.executeCommand('moa.showRouting') },
      { label: 'pin an expert for every file', kind: vscode.QuickPickItemKind.Separator, run: () => undefined },
      ...experts.map((name): Item => ({
        label: `$(pinned) ${name}`,
        description: state.pinned === name ? 'pinned now' : undefined,
        run: () => vscode.commands.executeCommand('moa.pinExpert', name),
      })),
    ];
    if (state.pinned) items.push({ label: '$(pin) Unpin', description: state.pinned, run: () => vscode.commands.executeCommand('moa.unpinExpert') });
    const pick = await vscode.window.showQuickPick(items, { title: 'MoA: routing', placeHolder: experts.length ? 'routing mode, or pin an expert' : 'routing mode (no trained expert to pin yet)' });
    await pick?.run();
  });
  cmd('moa.setRoutingMode', async () => {
    const current = ws.config().routing.mode;
    const items: (vscode.QuickPickItem & { mode: RoutingMode })[] = [
      { mode: 'label', label: 'label', description: 'the file\'s domain picks its expert (default)' },
      { mode: 'learned', label: 'learned', description: 'the trained router picks (falls back to labels until a router exists)' },
      { mode: 'auto', label: 'auto', description: 'labels, but a fenced block or SQL string goes to its own language\'s expert (or the router)' },
      { mode: 'pinned', label: 'pinned', description: 'one expert for every file (falls back to labels until one is pinned)' },
      { mode: 'off', label: 'off', description: 'base model only' },
    ];
    items.forEach((i) => i.mode === current && (i.detail = 'current'));
    const pick = await vscode.window.showQuickPick(items, { title: 'MoA: routing mode', placeHolder: `current: ${current}` });
    if (!pick) return;
    setRoutingMode(ws.layout.configFile, pick.mode);
    inline.reset();
    inline.showActiveRoute();
  });
  cmd('moa.tryCompletion', async () => {
    const manifest = readManifest(ws.layout);
    if (!manifest) throw new MoaError('no datasets yet', 'Run "MoA: Build Datasets" first.');
    const spot = completionSpot(ws.layout, manifest);
    if (!spot) throw new MoaError('no file of a domain has a line to complete after', 'Open any file of a domain and type: completions show as ghost text.');
    const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(join(ws.layout.root, spot.file)));
    const editor = await vscode.window.showTextDocument(doc);
    const at = new vscode.Position(spot.line, spot.col);
    editor.selection = new vscode.Selection(at, at);
    editor.revealRange(new vscode.Range(at, at), vscode.TextEditorRevealType.InCenter);
    inline.showActiveRoute();
    await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
    void vscode.window.showInformationMessage(`MoA: a held-out ${spot.domain} file; the ghost text comes from the ${spot.domain} expert. Tab accepts it.`);
  });
}
