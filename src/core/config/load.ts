import { existsSync, readFileSync } from 'node:fs';
import { lineOfJsonPath } from '../util/jsonLocate';
import { readJsonObject } from '../util/json';
import { MoaError } from '../util/errors';
import { writeJsonAtomic } from '../util/atomic';
import { formatProblems, validateConfig, type ConfigProblem } from './validate';
import type { MoaConfig } from './schema';

export interface LoadedConfig {
  config: MoaConfig;
  warnings: string[];
}

/** Reads and validates `.moa/moa.json`; every failure names the file and the JSON path. */
export function loadConfig(file: string): LoadedConfig {
  if (!existsSync(file)) {
    throw new MoaError(`${file}: no MoA config here`, 'Run "moa init" (or "MoA: Initialize Workspace") first.');
  }
  const result = validateConfig(readJsonObject(file));
  if (!result.config) {
    // The first problem's line, for an editor to open the file there.
    const line = lineOfJsonPath(readFileSync(file, 'utf8'), result.errors[0]?.path ?? '$');
    throw new MoaError(formatProblems(file, result.errors), undefined, { file, line });
  }
  return { config: result.config, warnings: result.warnings.map((w: ConfigProblem) => `${file}: ${w.path}: ${w.message}`) };
}

export function saveConfig(file: string, config: MoaConfig): void {
  writeJsonAtomic(file, config);
}
