import * as vscode from 'vscode';
import { moaSettings } from './settings';
import { existsSync } from 'node:fs';
import { PythonExtension, PVSC_EXTENSION_ID } from '@vscode/python-extension';
import { loadConfig } from '../core/config/load';
import type { MoaConfig } from '../core/config/schema';
import { productLayout, workspaceLayout, type ProductLayout, type WorkspaceLayout } from '../core/paths';
import { choosePython } from '../core/trainer/python';

/** The Python extension's selected interpreter, if that extension is installed; asked only when needed. */
async function selectedInterpreter(resource: vscode.Uri): Promise<string | undefined> {
  if (!vscode.extensions.getExtension(PVSC_EXTENSION_ID)) return undefined;
  try {
    const api = await PythonExtension.api();
    const env = await api.environments.resolveEnvironment(api.environments.getActiveEnvironmentPath(resource));
    return env?.executable.uri?.fsPath;
  } catch {
    // A Python extension that fails to answer must not stop training: fall back to the setting.
    return undefined;
  }
}

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

  /**
   * The interpreter for the trainer: the one selected in the Python extension when it is installed
   * (the user's choice, with its own trust handling), else the machine-scoped setting (a workspace
   * cannot choose the executable), else the extension's .venv or python3.
   */
  async python(): Promise<string> {
    const selected = await selectedInterpreter(vscode.Uri.file(this.layout.root));
    if (selected) return selected;
    return choosePython(this.product.root, moaSettings().pythonPath).command;
  }
}
