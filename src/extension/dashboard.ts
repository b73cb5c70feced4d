import { deviceLabel } from '../core/trainer/device';
import * as vscode from 'vscode';
import { unwatchFile, watchFile } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { EventTail } from '../core/trainer/eventTail';
import type { TrainerEvent } from '../core/trainer/events';
import { listRuns, readRunEvents, runStatus } from '../core/trainer/runs';
import { parseWebviewMessage, type DashboardEval, type DashboardStep, type HostMessage } from '../../webview/dashboard/protocol';
import type { TrainingController } from './training';
import type { MoaWorkspace } from './workspace';
import { webviewHtml, webviewOptions } from './webviewHtml';

function toStep(e: TrainerEvent & { type: 'step' }): DashboardStep {
  return { expert: e.expert, stage: e.stage, step: e.step, steps: e.steps, loss: e.loss, lr: e.lr, tokensPerS: e.tokens_per_s, elapsedS: e.elapsed_s };
}

function toEval(e: TrainerEvent & { type: 'eval' }): DashboardEval {
  return { stage: e.stage, expert: e.expert, step: e.step ?? 0, loss: e.loss };
}

/** The training dashboard's host: one panel, fed from the live run or, after a reload, from events.jsonl. */
export class DashboardPanel implements vscode.Disposable {
  private static current?: DashboardPanel;
  private readonly disposables: vscode.Disposable[] = [];

  /** A past run chosen in the Runs view; undefined follows the live (or latest) run. */
  private runId?: string;
  /** A run another process is writing (the CLI, another machine): its file, read as it grows. */
  private following?: { file: string; tail: EventTail; listener: () => void };

  static show(context: vscode.ExtensionContext, ws: MoaWorkspace, training: TrainingController, runId?: string): DashboardPanel {
    if (DashboardPanel.current) {
      DashboardPanel.current.runId = runId;
      DashboardPanel.current.panel.reveal(vscode.ViewColumn.Beside, true);
      DashboardPanel.current.post(DashboardPanel.current.snapshot());
      return DashboardPanel.current;
    }
    const panel = vscode.window.createWebviewPanel('moa.dashboard', 'MoA Training', { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true }, webviewOptions(context.extensionUri));
    DashboardPanel.current = new DashboardPanel(panel, context, ws, training);
    DashboardPanel.current.runId = runId;
    return DashboardPanel.current;
  }

  private constructor(
    private readonly panel: vscode.WebviewPanel,
    context: vscode.ExtensionContext,
    private readonly ws: MoaWorkspace,
    private readonly training: TrainingController,
  ) {
    panel.webview.html = this.html(context);
    this.disposables.push(
      panel.onDidDispose(() => this.dispose()),
      panel.webview.onDidReceiveMessage((raw: unknown) => {
        const msg = parseWebviewMessage(raw);
        if (!msg) return void ws.log.warn(`dashboard: ignored an invalid message ${JSON.stringify(raw)?.slice(0, 200)}`);
        if (msg.type === 'ready') this.post(this.snapshot());
        else if (msg.type === 'stop') training.stop();
      }),
      training.onEvent((e) => {
        if (this.runId && this.runId !== training.runId) return;
        if (e.type === 'step') this.post({ type: 'step', step: toStep(e) });
        else if (e.type === 'eval') this.post({ type: 'eval', eval: toEval(e) });
        else if (e.type === 'hello') this.post({ type: 'status', status: training.status, device: deviceLabel(e) });
        else if (e.type === 'plan' && e.world_size) this.post({ type: 'status', status: training.status, worldSize: e.world_size });
      }),
      training.onStatus((status) => {
        if (status === 'running') {
          this.runId = undefined;
          this.post(this.snapshot());
          return;
        }
        if (this.runId && this.runId !== training.runId) return;
        else this.post({ type: 'status', status });
      }),
    );
  }

  /** The whole history of the current (or latest) run, read from its events.jsonl. */
  private snapshot(): HostMessage {
    const live = !this.runId || this.runId === this.training.runId;
    const file = !live ? join(this.ws.layout.runsDir, this.runId!, 'events.jsonl') : (this.training.runEventsFile ?? this.latestRunEvents());
    // Not this window's run, and still running: the CLI in a terminal, or `--print-launch` elsewhere.
    const foreign = file !== null && !(live && this.training.running) && runStatus(this.ws.layout, basename(dirname(file))) === 'running';
    const events = foreign ? this.follow(file) : (this.unfollow(), file ? readRunEvents(file) : []);
    const hello = events.find((e): e is TrainerEvent & { type: 'hello' } => e.type === 'hello');
    const done = events.find((e): e is TrainerEvent & { type: 'done' } => e.type === 'done');
    const status = live && this.training.running ? this.training.status : foreign ? 'running (elsewhere)' : done ? (done.stopped ? 'stopped' : 'done') : events.length ? 'ended' : 'idle';
    return {
      type: 'reset',
      runId: live ? this.training.runId : this.runId!,
      status,
      device: hello ? deviceLabel(hello) : null,
      worldSize: events.filter((e): e is TrainerEvent & { type: 'plan' } => e.type === 'plan').pop()?.world_size ?? 1,
      steps: events.filter((e): e is TrainerEvent & { type: 'step' } => e.type === 'step').map(toStep),
      evals: events.filter((e): e is TrainerEvent & { type: 'eval' } => e.type === 'eval').map(toEval),
    };
  }

  /**
   * Reads `file` from its start and then as it grows (polled: a shared file system does not report
   * another machine's writes), posting what is appended; stops at the run's end.
   */
  private follow(file: string): TrainerEvent[] {
    this.unfollow();
    const tail = new EventTail(file);
    const listener = () => {
      for (const e of tail.read()) {
        if (e.type === 'step') this.post({ type: 'step', step: toStep(e) });
        else if (e.type === 'eval') this.post({ type: 'eval', eval: toEval(e) });
        else if (e.type === 'hello') this.post({ type: 'status', status: 'running (elsewhere)', device: deviceLabel(e) });
        else if (e.type === 'plan' && e.world_size) this.post({ type: 'status', status: 'running (elsewhere)', worldSize: e.world_size });
        else if (e.type === 'done' || e.type === 'error') {
          this.post({ type: 'status', status: e.type === 'error' ? 'failed' : e.stopped ? 'stopped' : 'done' });
          this.unfollow();
        }
      }
    };
    const events = tail.read();
    watchFile(file, { interval: 1000, persistent: false }, listener);
    this.following = { file, tail, listener };
    return events;
  }

  private unfollow(): void {
    if (this.following) unwatchFile(this.following.file, this.following.listener);
    this.following = undefined;
  }

  private latestRunEvents(): string | null {
    const runs = listRuns(this.ws.layout);
    const last = runs[runs.length - 1];
    return last ? join(this.ws.layout.runsDir, last, 'events.jsonl') : null;
  }

  private post(m: HostMessage): void {
    void this.panel.webview.postMessage(m);
  }

  private html(context: vscode.ExtensionContext): string {
    return webviewHtml(this.panel.webview, context.extensionUri, 'dashboard', 'MoA Training', { bundledCss: true }, `<header>
  <h1>MoA training</h1>
  <vscode-button id="stop" appearance="secondary" disabled>Stop</vscode-button>
</header>
<section class="stats">
  <div><label>Status</label><span id="status">idle</span></div>
  <div><label>Device</label><span id="device">—</span></div>
  <div><label>Stage</label><span id="stage">—</span></div>
  <div><label>Step</label><span id="progress">—</span></div>
  <div><label>Learning rate</label><span id="lr">—</span></div>
  <div><label>Tokens/s</label><span id="tps">—</span></div>
  <div><label>ETA</label><span id="eta">—</span></div>
</section>
<div id="legend"></div>
<div id="chart" aria-label="Loss per expert"></div>`);
  }

  dispose(): void {
    this.unfollow();
    DashboardPanel.current = undefined;
    this.disposables.forEach((d) => d.dispose());
    this.panel.dispose();
  }
}
