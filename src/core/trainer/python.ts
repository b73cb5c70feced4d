import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { envPython, trainerEnvDir } from './setup';

export interface PythonChoice {
  command: string;
  source: 'explicit' | 'environment' | 'bundled-venv' | 'setup-env' | 'path';
}

/**
 * The interpreter that runs the trainer: an explicit choice (a machine-scoped setting or --python),
 * then MOA_PYTHON, then the product's own virtual environment, then the one `moa setup` made
 * (setup.ts), then python3 on PATH.
 */
export function choosePython(productRoot: string, explicit?: string, env: NodeJS.ProcessEnv = process.env): PythonChoice {
  if (explicit) return { command: explicit, source: 'explicit' };
  if (env['MOA_PYTHON']) return { command: env['MOA_PYTHON'], source: 'environment' };
  const venv = envPython(join(productRoot, '.venv'));
  if (existsSync(venv)) return { command: venv, source: 'bundled-venv' };
  const made = envPython(trainerEnvDir(env));
  if (existsSync(made)) return { command: made, source: 'setup-env' };
  return { command: process.platform === 'win32' ? 'python' : 'python3', source: 'path' };
}
