import * as vscode from 'vscode';
import { summarizeRuns, type RunSummary } from '../core/trainer/runSummary';
import type { MoaWorkspace } from './workspace';

const ICON: Record<string, string> = { done: 'pass', stopped: 'debug-pause', failed: 'error', running: 'sync~spin' };

/** Past and current training runs, newest first; opening one shows its curves in the dashboard. */
export class RunsTree implements vscode.TreeDataProvider<RunSummary> {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;

  constructor(private readonly ws: MoaWorkspace) {}

  refresh(): void {
    this.changed.fire();
  }

  getChildren(node?: RunSummary): RunSummary[] {
    return node || !this.ws.hasConfig() ? [] : summarizeRuns(this.ws.layout);
  }

  getTreeItem(run: RunSummary): vscode.TreeItem {
    const item = new vscode.TreeItem(run.id);
    const losses = Object.entries(run.finalLoss).map(([e, l]) => `${e} ${l.toFixed(3)}`).join(' · ');
    const duration = run.durationS !== undefined ? `${Math.round(run.durationS)} s` : '';
    item.description = [run.status, duration, losses].filter(Boolean).join(' · ');
    item.tooltip = `${run.status}${run.steps ? `, ${run.steps} steps` : ''}${run.created ? `, started ${run.created}` : ''}\n${losses}`;
    item.iconPath = new vscode.ThemeIcon(ICON[run.status] ?? 'circle-outline');
    item.command = { command: 'moa.openRun', title: 'Show Curves', arguments: [run.id] };
    item.contextValue = 'moa.run';
    return item;
  }
}
