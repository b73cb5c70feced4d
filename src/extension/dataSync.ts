import { moaSettings } from './settings';
import * as vscode from 'vscode';
import { readManifest } from '../core/data/shards';
import { describeUpdate, type DatasetWatcher } from '../core/data/watch';
import { errorMessage } from '../core/util/errors';
import { watchWorkspaceData } from '../core/workspace';
import type { MoaWorkspace } from './workspace';

/**
 * Keeps the workspace's datasets current while the user edits (setting `moa.data.watch`): once
 * they have been built, only the files that change are re-tokenized, so "Train" finds fresh data.
 */
export class DatasetSync implements vscode.Disposable {
  private watcher: DatasetWatcher | undefined;
  private disposed = false;
  private readonly subs: vscode.Disposable[];

  constructor(private readonly ws: MoaWorkspace) {
    this.subs = [vscode.workspace.onDidChangeConfiguration((e) => e.affectsConfiguration('moa.data.watch') && this.sync())];
  }

  /** Starts or stops watching to match the setting and whether datasets exist yet. */
  sync(): void {
    if (this.disposed) return;
    const wanted = moaSettings().dataWatch && this.ws.hasConfig() && readManifest(this.ws.layout) !== undefined;
    if (wanted && !this.watcher) {
      this.watcher = watchWorkspaceData(this.ws.layout, this.ws.product, {
        onUpdate: (r, ms, paths) => {
          if (r.kind === 'unchanged') return;
          this.ws.log.info(`datasets after ${paths} change(s) in ${ms.toFixed(0)} ms: ${describeUpdate(r)}`);
        },
        onError: (e) => this.ws.log.warn(`dataset watcher: ${errorMessage(e)}`),
      });
      this.ws.log.info('watching the workspace to keep datasets current (setting moa.data.watch)');
    } else if (!wanted && this.watcher) {
      void this.watcher.dispose();
      this.watcher = undefined;
    }
  }

  dispose(): void {
    this.disposed = true;
    this.subs.forEach((s) => s.dispose());
    void this.watcher?.dispose();
    this.watcher = undefined;
  }
}
