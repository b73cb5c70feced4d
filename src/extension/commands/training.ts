import * as vscode from 'vscode';
import { moaSettings } from '../settings';
import { usableExperts } from '../../core/adapters/store';
import type { TrainStage } from '../../core/trainer/train';
import { MoaError } from '../../core/util/errors';
import { withCancellableProgress } from '../abort';
import { DashboardPanel } from '../dashboard';
import type { App } from './app';

/** Training runs: all experts, one domain, the router; stopping; the dashboard. */
export function registerTrainingCommands({ context, ws, training, tree, cmd }: App): void {
  const requireTrust = () => {
    if (!vscode.workspace.isTrusted) {
      throw new MoaError('training is disabled in a restricted workspace: it runs Python on this folder\'s data.', 'Trust the workspace (Manage Workspace Trust) to train.');
    }
  };
  const train = async (stages?: TrainStage[], domains?: string[]) => {
    requireTrust();
    const { trainSteps: override, trainMinutes: minutes } = moaSettings();
    // Starting may build the datasets first (a child process): shown, and cancellable until the trainer runs.
    await withCancellableProgress('MoA: starting training', (signal) =>
      training.start(override > 0 ? override : ws.config().training.steps, stages, domains, minutes > 0 ? minutes : undefined, signal));
    DashboardPanel.show(context, ws, training);
    tree.refresh();
  };
  cmd('moa.trainAll', () => train());
  cmd('moa.trainDomain', async (node?: unknown) => {
    const fromTree = (node as { kind?: string; name?: string } | undefined)?.kind === 'domain' ? (node as { name: string }).name : undefined;
    const domain = fromTree ?? (await vscode.window.showQuickPick(ws.config().domains.map((d) => d.name), { title: 'MoA: train the expert of which domain?' }));
    if (domain) await train(['experts'], [domain]);
  });
  cmd('moa.trainRouter', () => {
    if (usableExperts(ws.layout.expertsDir).length < 2) {
      throw new MoaError('the router chooses among experts: train at least two first', 'Run "MoA: Train All Experts".');
    }
    return train(['router']);
  });
  cmd('moa.resumeTraining', async () => {
    requireTrust();
    await training.resume();
    DashboardPanel.show(context, ws, training);
    tree.refresh();
  });
  cmd('moa.cancelTraining', () => training.stop());
  cmd('moa.showDashboard', () => DashboardPanel.show(context, ws, training));
  cmd('moa.openRun', (runId?: string) => DashboardPanel.show(context, ws, training, typeof runId === 'string' ? runId : undefined));
}
