import * as vscode from 'vscode';
import type { MoaInlineProvider } from '../inline';
import type { ServeController } from '../serve';
import type { TrainingController } from '../training';
import type { ExpertsTree } from '../tree';
import type { RunsTree } from '../runsTree';
import type { MoaWorkspace } from '../workspace';

/** What every command module works with: the window's workspace, its views and its services. */
export interface App {
  context: vscode.ExtensionContext;
  ws: MoaWorkspace;
  training: TrainingController;
  tree: ExpertsTree;
  runs: RunsTree;
  inline: MoaInlineProvider;
  serve: ServeController;
  /** Registers a command whose failures become notifications with a way to the log. */
  cmd: (id: string, fn: (...args: never[]) => unknown) => void;
}

/** The expert a command was invoked on: a tree node from a context menu, or a name; undefined if neither. */
export function expertNameOf(node: unknown): string | undefined {
  if (typeof node === 'string') return node; // an expert's name, from another command (the status-bar menu)
  const n = node as { kind?: string; expert?: { name?: string; status?: string } } | undefined;
  return n?.kind === 'expert' && n.expert?.status === 'ok' ? n.expert.name : undefined;
}
