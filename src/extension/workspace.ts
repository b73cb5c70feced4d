import * as vscode from 'vscode';
import { existsSync } from 'node:fs';
import { loadConfig } from '../core/config/load';
import type { MoaConfig } from '../core/config/schema';
import { productLayout, workspaceLayout, type ProductLayout, type WorkspaceLayout } from '../core/paths';
import { choosePython } from '../core/trainer/python';

/** The one workspace folder MoA works on, and where the product's files are. */
export class MoaWorkspace {
  readonly product: ProductLayout;

  constructor(
    readonly layout: WorkspaceLayout,
    extensionPath: string,
    readonly log: vscode.LogOutputChannel,
  ) {
    this.product = productLayout(extensionPath);
  }

  static fromWindow(extensionPath: string, log: vscode.LogOutputChannel): MoaWorkspace | undefined {
    const folder = vscode.workspace.workspaceFolders?.[0];
    return folder && folder.uri.scheme === 'file' ? new MoaWorkspace(workspaceLayout(folder.uri.fsPath), extensionPath, log) : undefined;
  }

  hasConfig(): boolean {
    return existsSync(this.layout.configFile);
  }

  /** Reads the config fresh each time: the user edits it while the extension runs. */
  config(): MoaConfig {
    const { config, warnings } = loadConfig(this.layout.configFile);
    warnings.forEach((w) => this.log.warn(w));
    return config;
  }

  /** The Python setting is machine-scoped, so a workspace cannot choose the executable. */
  python(): string {
    const explicit = vscode.workspace.getConfiguration('moa').inspect<string>('pythonPath')?.globalValue;
    return choosePython(this.product.root, explicit || undefined).command;
  }
}
