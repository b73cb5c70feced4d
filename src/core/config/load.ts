import { existsSync, readFileSync } from 'node:fs';
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
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new MoaError(`${file}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  const result = validateConfig(raw);
  if (!result.config) throw new MoaError(formatProblems(file, result.errors));
  return { config: result.config, warnings: result.warnings.map((w: ConfigProblem) => `${file}: ${w.path}: ${w.message}`) };
}

export function saveConfig(file: string, config: MoaConfig): void {
  writeJsonAtomic(file, config);
}
