import * as vscode from 'vscode';
import pkg from '../../package.json';
import type { StopMode } from '../core/inference/stop';

/**
 * Every `moa.*` setting, read here and nowhere else, with the defaults package.json declares (the
 * one place they are written). As rust-analyzer's config.ts: typed, read on demand, so a change
 * in the settings UI applies to the next request.
 */
export interface MoaSettings {
  /** Machine scope only: a workspace's settings can never choose the executable that runs. */
  pythonPath: string | undefined;
  dataWatch: boolean;
  /** 0: training.steps / training.minutes from .moa/moa.json. */
  trainSteps: number;
  trainMinutes: number;
  /** Data-parallel trainer processes on this machine (torchrun); machine scope. */
  trainProcesses: number;
  /** moa serve from the editor: its port on loopback (0: any free port). */
  servePort: number;
  inline: { enabled: boolean; maxTokens: number; promptTokens: number; debounceMs: number; stopAt: StopMode; disabledDomains: string[] };
}

type Declared = Record<string, { default?: unknown }>;
// package.json's JSON types are literal and wide; each key read below is held to exist by a test.
const declared = (pkg as unknown as { contributes: { configuration: { properties: Declared } } }).contributes.configuration.properties;

function read<T>(section: vscode.WorkspaceConfiguration, key: string): T {
  return section.get<T>(key, declared[`moa.${key}`]!.default as T);
}

export function moaSettings(): MoaSettings {
  const c = vscode.workspace.getConfiguration('moa');
  return {
    pythonPath: c.inspect<string>('pythonPath')?.globalValue || undefined,
    dataWatch: read<boolean>(c, 'data.watch'),
    trainSteps: read<number>(c, 'trainSteps'),
    trainMinutes: read<number>(c, 'trainMinutes'),
    trainProcesses: read<number>(c, 'train.processes'),
    servePort: read<number>(c, 'serve.port'),
    inline: {
      enabled: read<boolean>(c, 'inline.enabled'),
      maxTokens: read<number>(c, 'inline.maxTokens'),
      promptTokens: read<number>(c, 'inline.promptTokens'),
      debounceMs: read<number>(c, 'inline.debounceMs'),
      stopAt: read<StopMode>(c, 'inline.stopAt'),
      disabledDomains: read<string[]>(c, 'inline.disabledDomains'),
    },
  };
}

/** The setting keys this module reads (a test holds them equal to package.json's). */
export const SETTING_KEYS = ['pythonPath', 'data.watch', 'trainSteps', 'trainMinutes', 'train.processes', 'serve.port', 'inline.enabled', 'inline.maxTokens', 'inline.promptTokens', 'inline.debounceMs', 'inline.stopAt', 'inline.disabledDomains'];
