import * as vscode from 'vscode';
import { expertCatalog, type CatalogEntry } from '../core/adapters/catalog';
import { leftOutCount, readManifest } from '../core/data/shards';
import { meanAccuracy, readRouterInfo, type RouterInfo } from '../core/adapters/router';
import { configuredBase } from '../core/models/base';
import { errorMessage } from '../core/util/errors';
import type { TrainingController } from './training';
import type { MoaWorkspace } from './workspace';

type Node =
  | { kind: 'base'; label: string; description: string; tooltip: string }
  | { kind: 'domain'; name: string; description: string; expert?: CatalogEntry }
  | { kind: 'expert'; expert?: CatalogEntry; domain: string; training: boolean }
  | { kind: 'router'; info?: RouterInfo }
  | { kind: 'message'; label: string; icon: string; tooltip?: string }
  | { kind: 'files'; label: string; files: { path: string; why: string }[]; more: number };

function compact(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : String(n);
}

interface DeviceInfo {
  label: string;
  detail: string;
  /** When it was found out (ISO time), shown after a reload so an old answer reads as old. */
  checked?: string;
}

const DEVICE_KEY = 'moa.device';

/** Sidebar tree: base model, then each domain with its expert. */
export class ExpertsTree implements vscode.TreeDataProvider<Node> {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;

  /** What the last doctor or training run said about Python and the device; kept across reloads. */
  device?: DeviceInfo;

  constructor(
    private readonly ws: MoaWorkspace,
    private readonly training: TrainingController,
    private readonly memory?: vscode.Memento,
  ) {
    this.device = memory?.get<DeviceInfo>(DEVICE_KEY);
  }

  setDevice(device: DeviceInfo): void {
    this.device = { ...device, checked: new Date().toISOString() };
    void this.memory?.update(DEVICE_KEY, this.device);
    this.refresh();
  }

  refresh(): void {
    this.changed.fire();
  }

  getChildren(node?: Node): Node[] {
    if (!node) return this.roots();
    if (node.kind === 'domain') return [{ kind: 'expert', expert: node.expert, domain: node.name, training: this.training.running }];
    if (node.kind === 'files') {
      const rows: Node[] = node.files.map((f) => ({ kind: 'message', label: f.path, icon: 'file', tooltip: f.why }));
      return node.more > 0 ? [...rows, { kind: 'message', label: `… and ${node.more} more`, icon: 'ellipsis' }] : rows;
    }
    return [];
  }

  private roots(): Node[] {
    if (!this.ws.hasConfig()) return [];
    let config;
    try {
      config = this.ws.config();
    } catch (e) {
      return [{ kind: 'message', label: 'Config has errors', icon: 'error', tooltip: errorMessage(e) }];
    }
    const nodes: Node[] = [];
    try {
      const base = configuredBase(config.baseModel, this.ws.product, this.ws.layout.root);
      const device = this.device ? ` · ${this.device.label}` : '';
      nodes.push({ kind: 'base', label: config.baseModel, description: `${compact(base.parameters)} params · ${base.modelType}${device}`, tooltip: `${base.dir}\n${base.numLayers} layers, hidden ${base.hiddenSize}, vocab ${base.vocabSize}${this.device ? `\n${this.device.detail}${this.device.checked ? ` (checked ${new Date(this.device.checked).toLocaleString()})` : ''}` : '\nRun "MoA: Check Environment" to see the device.'}` });
    } catch (e) {
      nodes.push({ kind: 'message', label: `Base model ${config.baseModel} unavailable`, icon: 'error', tooltip: errorMessage(e) });
    }
    const manifest = readManifest(this.ws.layout);
    const catalog = expertCatalog(this.ws.layout, config.baseModel);
    const experts = new Map(catalog.experts.map((e) => [e.name, e]));
    for (const d of config.domains) {
      const stats = manifest?.domains.find((s) => s.domain === d.name);
      const expert = experts.get(d.name);
      const stale = expert?.staleBecause === 'base' ? ' · stale (other base)' : expert?.staleBecause === 'data' ? ' · stale' : '';
      const description = stats ? `${stats.files} files · ${compact(stats.trainTokens + stats.valTokens)} tokens${stale}` : 'no dataset yet';
      nodes.push({ kind: 'domain', name: d.name, description, expert });
    }
    if (config.domains.length > 1) nodes.push({ kind: 'router', info: readRouterInfo(this.ws.layout.routerDir) });
    if (catalog.problem) nodes.push({ kind: 'message', label: 'Expert state unreadable', icon: 'warning', tooltip: catalog.problem });
    if (manifest) {
      // What the datasets left out, by name: skipped for what the file is, or in no domain.
      const skipped = (manifest.skippedFiles ?? []).map((f) => ({ path: f.path, why: `skipped: ${f.reason}` }));
      const loose = (manifest.unassignedFiles ?? []).map((f) => ({ path: f, why: 'matches no domain' }));
      // Manifests written before files were named count only what matched no domain here.
      const total = manifest.skippedFiles ? leftOutCount(manifest) : manifest.unassigned;
      if (total > 0) nodes.push({ kind: 'files', label: `${total} files not in any dataset`, files: [...skipped, ...loose], more: total - skipped.length - loose.length });
    }
    return nodes;
  }

  getTreeItem(node: Node): vscode.TreeItem {
    switch (node.kind) {
      case 'base': {
        const item = new vscode.TreeItem(node.label);
        item.description = node.description;
        item.tooltip = node.tooltip;
        item.iconPath = new vscode.ThemeIcon('circuit-board');
        item.contextValue = 'moa.base';
        return item;
      }
      case 'domain': {
        const item = new vscode.TreeItem(node.name, vscode.TreeItemCollapsibleState.Expanded);
        item.description = node.description;
        item.iconPath = new vscode.ThemeIcon('symbol-folder');
        item.contextValue = 'moa.domain';
        item.id = `domain:${node.name}`;
        return item;
      }
      case 'expert': {
        const e = node.expert;
        const item = new vscode.TreeItem(e ? `expert ${e.name}` : 'no expert yet');
        item.id = `expert:${node.domain}`;
        if (!e) {
          item.description = node.training ? 'training…' : 'run "Train All Experts"';
          item.iconPath = new vscode.ThemeIcon(node.training ? 'loading~spin' : 'circle-outline');
        } else if (e.status === 'broken') {
          item.description = 'broken';
          item.tooltip = e.reason;
          item.iconPath = new vscode.ThemeIcon('error', new vscode.ThemeColor('errorForeground'));
        } else {
          const loss = e.meta.val_loss ?? e.meta.train_loss;
          const state = e.state;
          item.description = `${state} · r=${e.r} α=${e.alpha}${e.parameters ? ` · ${compact(e.parameters)} params` : ''}${loss !== undefined ? ` · loss ${loss.toFixed(3)}` : ''}`;
          item.contextValue = `moa.expert.ok.${state}`;
          item.tooltip = `${e.dir}\ntargets: ${e.targetModules?.join(', ')}\n${e.sizeBytes} bytes\nsteps: ${e.meta.steps ?? '?'}, run ${e.meta.run_id ?? '?'}`;
          item.iconPath = state === 'detached' ? new vscode.ThemeIcon('circle-large-outline') : new vscode.ThemeIcon(state === 'pinned' ? 'pinned' : 'pass-filled', new vscode.ThemeColor('testing.iconPassed'));
          return item;
        }
        item.contextValue = e ? `moa.expert.${e.status}` : 'moa.expert.none';
        return item;
      }
      case 'router': {
        const item = new vscode.TreeItem('router');
        item.id = 'router';
        const info = node.info;
        if (!info) {
          item.description = 'not trained';
          item.iconPath = new vscode.ThemeIcon('git-merge');
        } else if (info.status === 'broken') {
          item.description = 'broken';
          item.tooltip = info.reason;
          item.iconPath = new vscode.ThemeIcon('error', new vscode.ThemeColor('errorForeground'));
        } else {
          const acc = meanAccuracy(info);
          item.description = `trained · ${info.experts.length} experts${acc !== undefined ? ` · accuracy ${(acc * 100).toFixed(0)}%` : ''}`;
          item.tooltip = Object.entries(info.accuracy).map(([d, a]) => `${d}: ${a === null ? '—' : `${(a * 100).toFixed(1)}%`}`).join('\n');
          item.iconPath = new vscode.ThemeIcon('git-merge', new vscode.ThemeColor('testing.iconPassed'));
        }
        item.contextValue = 'moa.router';
        return item;
      }
      case 'files': {
        const item = new vscode.TreeItem(node.label, vscode.TreeItemCollapsibleState.Collapsed);
        item.id = 'left-out';
        item.contextValue = 'moa.leftOut';
        item.iconPath = new vscode.ThemeIcon('files');
        item.tooltip = 'Binary, too large, symbolic links, unreadable, or matching no domain ("moa data --verbose" lists them too)';
        return item;
      }
      case 'message': {
        const item = new vscode.TreeItem(node.label);
        item.iconPath = new vscode.ThemeIcon(node.icon);
        item.tooltip = node.tooltip;
        return item;
      }
    }
  }
}
