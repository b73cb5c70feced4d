import * as vscode from 'vscode';
import { unwatchFile, watchFile } from 'node:fs';
import { EventTail } from '../core/trainer/eventTail';
import { receiver } from '../core/util/channel';
import type { TrainerEvent } from '../core/trainer/events';
import { readRunEvents, runInfo, runStatus } from '../core/trainer/runs';
import { percentile } from '../core/util/stats';
import { ELSEWHERE, latestRunId, runUpdate, viewOf } from '../core/trainer/runView';
import { DASHBOARD_BODY } from '../../webview/dashboard/page';
import { parseWebviewMessage, type HostMessage } from '../../webview/dashboard/protocol';
import type { TrainingController } from './training';
import type { MoaWorkspace } from './workspace';
import { webviewHtml, webviewOptions } from './webviewHtml';

/** The training dashboard's host: one panel, fed from the live run or, after a reload, from events.jsonl. */
export class DashboardPanel implements vscode.Disposable {
  private static current?: DashboardPanel;
  private readonly disposables: vscode.Disposable[] = [];

  /** A past run chosen in the Runs view; undefined follows the live (or latest) run. */
  private runId?: string;
  /** A run another process is writing (the CLI, another machine): its file, read as it grows. */
  private following?: { file: string; tail: EventTail; listener: () => void };
  /** Per live step: ms from the trainer writing it to its message being posted (logged at the run's end). */
  private delays: number[] = [];

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
    panel.webview.html = webviewHtml(panel.webview, context.extensionUri, 'dashboard', 'MoA Training', { bundledCss: true }, DASHBOARD_BODY);
    this.disposables.push(
      panel.onDidDispose(() => this.dispose()),
      panel.webview.onDidReceiveMessage(
        receiver('dashboard', parseWebviewMessage, (msg) => (msg.type === 'ready' ? this.post(this.snapshot()) : training.stop()), (line) => ws.log.warn(line)),
      ),
      training.onEvent((e) => {
        if (this.runId && this.runId !== training.runId) return;
        // The run's end is told by onStatus below, which knows the process's exit too.
        const u = e.type === 'done' || e.type === 'error' ? undefined : runUpdate(e, training.status);
        if (u) this.post(u);
        if (u && e.type === 'step' && e.t !== undefined) this.delays.push(Date.now() - e.t * 1000);
      }),
      training.onStatus((status) => {
        if (status === 'running') {
          this.runId = undefined;
          this.post(this.snapshot());
          return;
        }
        if (status !== 'stopping' && this.delays.length) {
          const ms = (p: number) => percentile(this.delays, p).toFixed(1);
          ws.log.info(`dashboard: ${this.delays.length} steps posted; trainer wrote → posted p50 ${ms(0.5)} ms, p95 ${ms(0.95)} ms`);
          this.delays = [];
        }
        if (!this.runId || this.runId === training.runId) this.post({ type: 'status', status });
      }),
    );
  }

  /** The whole history of the chosen, the live or else the latest run, from its events.jsonl. */
  private snapshot(): HostMessage {
    const live = !this.runId || this.runId === this.training.runId;
    const id = live ? (this.training.runId ?? latestRunId(this.ws.layout)) : this.runId!;
    const liveRunning = live && this.training.running;
    // Not this window's run, and still running: the CLI in a terminal, or `--print-launch` elsewhere.
    if (id && !liveRunning && runStatus(this.ws.layout, id) === 'running') return { type: 'reset', ...viewOf(id, this.follow(runInfo(this.ws.layout, id).eventsFile), ELSEWHERE) };
    this.unfollow();
    return { type: 'reset', ...viewOf(id, id ? readRunEvents(runInfo(this.ws.layout, id).eventsFile) : [], liveRunning ? this.training.status : undefined) };
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
        const u = runUpdate(e, ELSEWHERE);
        if (u) this.post(u);
        if (e.type === 'done' || e.type === 'error') this.unfollow();
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

  private post(m: HostMessage): void {
    void this.panel.webview.postMessage(m);
  }

  dispose(): void {
    this.unfollow();
    DashboardPanel.current = undefined;
    this.disposables.forEach((d) => d.dispose());
    this.panel.dispose();
  }
}
