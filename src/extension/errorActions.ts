import * as vscode from 'vscode';
import { basename } from 'node:path';
import { PVSC_EXTENSION_ID } from '@vscode/python-extension';
import { errorMessage, MoaError } from '../core/util/errors';
import { needsSetup } from '../core/trainer/setup';

/**
 * What an error notification offers: the way to fix or understand it (the file at the offending
 * line; for a missing or torch-less Python the setup and choosing another interpreter), and the log.
 */
export function errorActions(e: unknown, log: vscode.LogOutputChannel, extra: string[] = []): { actions: string[]; run: (action: string | undefined) => Promise<void> } {
  const at = e instanceof MoaError ? e.at : undefined;
  const open = at ? `Open ${basename(at.file)}` : undefined;
  const setup = needsSetup(errorMessage(e)) ? ['Set Up Trainer Environment', 'Select Interpreter'] : [];
  return {
    actions: [...extra, ...(open ? [open] : []), ...setup, 'Open Log'],
    run: async (action) => {
      if (action === 'Open Log') log.show();
      else if (action === 'Set Up Trainer Environment') await vscode.commands.executeCommand('moa.setupEnvironment');
      else if (action === 'Select Interpreter') {
        // The Python extension's picker when it is there (its choice wins), else the machine-scoped setting.
        if (vscode.extensions.getExtension(PVSC_EXTENSION_ID)) await vscode.commands.executeCommand('python.setInterpreter');
        else await vscode.commands.executeCommand('workbench.action.openSettings', 'moa.pythonPath');
      } else if (action !== undefined && action === open && at) {
        const pos = new vscode.Position(Math.max(0, at.line - 1), 0);
        await vscode.window.showTextDocument(vscode.Uri.file(at.file), { selection: new vscode.Range(pos, pos) });
      }
    },
  };
}
