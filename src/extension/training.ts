import * as vscode from 'vscode';
import { join } from 'node:path';
import { buildDatasetsInChild } from '../core/data/buildProcess';
import type { DatasetManifest } from '../core/data/shards';
import { datasetsForTraining } from '../core/data/compact';
import { resolveBaseModelDir } from '../core/models/base';
import type { TrainerEvent } from '../core/trainer/events';
import { describeFailure } from '../core/trainer/process';
import { startTraining, type TrainStage, type TrainingSession } from '../core/trainer/train';
import { MoaError } from '../core/util/errors';
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

  async start(steps: number, stages?: TrainStage[], domains?: string[]): Promise<TrainingSession> {
    if (this.session || this.starting) throw new MoaError('a training run is already going in this window', 'Stop it first (MoA: Cancel Training).');
    this.starting = true;
    let python: string;
    let manifest: DatasetManifest;
    try {
      python = await this.ws.python();
      // A first build runs in a child process, as MoA: Build Datasets does: never on the host's thread.
      manifest = datasetsForTraining(this.ws.layout) ?? (await buildDatasetsInChild({ node: process.execPath, cli: join(this.ws.product.root, 'dist', 'cli.js'), root: this.ws.layout.root }));
    } finally {
      this.starting = false;
    }
    const config = this.ws.config();
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
      onEvent: (e) => this.events.fire(e),
      onLog: (line) => this.ws.log.info(`[trainer] ${line}`),
    });
    this.session = session;
    this.runId = session.run.id;
    this.runEventsFile = session.run.eventsFile;
    this.setStatus('running');
    this.ws.log.info(`training run ${session.run.id} started (${steps} steps)`);
    void session.exited.then((exit) => {
      this.session = undefined;
      if (exit.done) {
        this.setStatus(exit.done.stopped ? 'stopped' : 'done');
        this.ws.log.info(`training run ${session.run.id} ${exit.done.stopped ? 'stopped' : 'finished'}`);
      } else {
        this.setStatus('failed');
        const why = describeFailure(exit);
        this.ws.log.error(`training run ${session.run.id} failed: ${why}`);
        void vscode.window.showErrorMessage(`MoA training failed: ${why.split('\n')[0]}`, 'Open Log').then((a) => a && this.ws.log.show());
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
