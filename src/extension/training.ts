import * as vscode from 'vscode';
import { moaSettings } from './settings';
import { join } from 'node:path';
import { buildDatasetsInChild } from '../core/data/buildProcess';
import type { DatasetManifest } from '../core/data/shards';
import { datasetsForTraining } from '../core/data/compact';
import { resolveBaseModelDir } from '../core/models/base';
import { keptPrevious, type TrainerEvent } from '../core/trainer/events';
import { describeFailure, succeeded } from '../core/trainer/process';
import { errorActions } from './errorActions';
import { hasCheckpoint, latestResumable, type RunInfo } from '../core/trainer/runs';
import { datasetWarnings, resumeTraining, startTraining, type TrainStage, type TrainingSession } from '../core/trainer/train';
import { MoaError, errorMessage, throwIfCancelled } from '../core/util/errors';
import type { MoaWorkspace } from './workspace';

export type TrainingStatus = 'idle' | 'running' | 'stopping' | 'done' | 'stopped' | 'failed';

/** Owns the one training process of the window and fans its events out to the views. */
export class TrainingController implements vscode.Disposable {
  private session?: TrainingSession;
  private readonly events = new vscode.EventEmitter<TrainerEvent>();
  private readonly statusChanged = new vscode.EventEmitter<TrainingStatus>();
  readonly onEvent = this.events.event;
  readonly onStatus = this.statusChanged.event;
  status: TrainingStatus = 'idle';
  runId: string | null = null;
  runEventsFile: string | null = null;
  private starting = false;

  constructor(private readonly ws: MoaWorkspace) {}

  private setStatus(s: TrainingStatus): void {
    this.status = s;
    this.statusChanged.fire(s);
  }

  get running(): boolean {
    return this.session !== undefined;
  }

  private guardIdle(): void {
    if (this.session || this.starting) throw new MoaError('a training run is already going in this window', 'Stop it first (MoA: Cancel Training).');
  }

  /** Continues a stopped, failed or interrupted run from its last checkpoint (`finishNow`: only publish it). */
  async resume(run?: RunInfo, opts: { finishNow?: boolean } = {}): Promise<TrainingSession> {
    this.guardIdle();
    const target = run ?? latestResumable(this.ws.layout);
    if (!target) throw new MoaError('no stopped, failed or interrupted run with a checkpoint to resume', 'Start a new run with "MoA: Train All Experts".');
    this.starting = true;
    let python: string;
    try {
      python = await this.ws.python();
    } finally {
      this.starting = false;
    }
    return this.follow(resumeTraining({ layout: this.ws.layout, product: this.ws.product, python, run: target, finishNow: opts.finishNow, onEvent: (e) => this.events.fire(e), onLog: (line) => this.ws.log.info(`[trainer] ${line}`) }), 'resumed');
  }

  async start(steps: number, stages?: TrainStage[], domains?: string[], minutes?: number, signal?: AbortSignal): Promise<TrainingSession> {
    this.guardIdle();
    this.starting = true;
    let python: string;
    let manifest: DatasetManifest;
    try {
      python = await this.ws.python();
      // A first build runs in a child process, as MoA: Build Datasets does: never on the host's thread.
      manifest = datasetsForTraining(this.ws.layout) ?? (await buildDatasetsInChild({ node: process.execPath, builder: join(this.ws.product.root, 'dist', 'dataBuild.js'), productRoot: this.ws.product.root, root: this.ws.layout.root, ...(signal ? { signal } : {}) }));
      throwIfCancelled(signal, 'starting training');
    } finally {
      this.starting = false;
    }
    const config = this.ws.config();
    for (const w of datasetWarnings(manifest, config, domains)) {
      this.ws.log.warn(w);
      void vscode.window.showWarningMessage(`MoA: ${w}`);
    }
    const session = startTraining({
      layout: this.ws.layout,
      product: this.ws.product,
      config,
      manifest,
      baseModelDir: resolveBaseModelDir(config.baseModel, this.ws.product, this.ws.layout.root),
      python,
      steps,
      stages,
      domains,
      minutes,
      // Machine scope (settings.ts): how many processes this machine's GPUs take is not the workspace's call.
      ...(moaSettings().trainProcesses > 1 ? { processes: { nprocPerNode: moaSettings().trainProcesses } } : {}),
      onEvent: (e) => this.events.fire(e),
      onLog: (line) => this.ws.log.info(`[trainer] ${line}`),
    });
    return this.follow(session, `started (${steps} steps)`);
  }

  private follow(session: TrainingSession, what: string): TrainingSession {
    this.session = session;
    this.runId = session.run.id;
    this.runEventsFile = session.run.eventsFile;
    this.setStatus('running');
    this.ws.log.info(`training run ${session.run.id} ${what}`);
    void session.exited.then((exit) => {
      this.session = undefined;
      const run = session.run;
      if (succeeded(exit)) {
        this.setStatus(exit.done.stopped ? 'stopped' : 'done');
        this.ws.log.info(`training run ${run.id} ${exit.done.stopped ? 'stopped' : 'finished'}`);
        const kept = keptPrevious(exit.done);
        if (kept.length) {
          void vscode.window
            .showInformationMessage(`MoA: run stopped before the end of ${kept.join(', ')}; the existing ${kept.join(' and ')} ${kept.length > 1 ? 'were' : 'was'} kept. Its checkpoint can be resumed.`, 'Resume', 'Keep Partial Experts')
            .then((a) => a && this.resume(run, { finishNow: a === 'Keep Partial Experts' }).catch((e) => this.ws.log.error(errorMessage(e))));
        }
      } else {
        this.setStatus('failed');
        const why = describeFailure(exit);
        this.ws.log.error(`training run ${run.id} failed: ${why}`);
        const { actions, run: fix } = errorActions(new Error(why), this.ws.log, hasCheckpoint(run) && !exit.hostError ? ['Resume'] : []);
        void vscode.window.showErrorMessage(`MoA training failed: ${why.split('\n')[0]}`, ...actions).then((a) => {
          if (a !== 'Resume') void fix(a);
          else this.resume(run).catch((e) => void vscode.window.showErrorMessage(`MoA: ${errorMessage(e)}`, 'Open Log').then((o) => o && this.ws.log.show()));
        });
      }
    });
    return session;
  }

  stop(): void {
    if (!this.session) return;
    this.setStatus('stopping');
    this.session.stop();
  }

  dispose(): void {
    this.session?.stop();
    this.events.dispose();
    this.statusChanged.dispose();
  }
}
