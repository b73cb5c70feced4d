import { existsSync } from 'node:fs';
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
  if (!result.config) throw new MoaError(formatProblems(file, result.errors));
  return { config: result.config, warnings: result.warnings.map((w: ConfigProblem) => `${file}: ${w.path}: ${w.message}`) };
}

export function saveConfig(file: string, config: MoaConfig): void {
  writeJsonAtomic(file, config);
}
