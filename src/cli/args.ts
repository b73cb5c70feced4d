import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { productLayout, workspaceLayout, type WorkspaceLayout } from '../core/paths';
import { choosePython } from '../core/trainer/python';
import { TRAIN_STAGES, type TrainStage } from '../core/trainer/train';

/** Exit codes: 0 ok, 1 the work failed, 2 bad usage, 3 training stopped before the end. */
export const EXIT = { ok: 0, failed: 1, usage: 2, stopped: 3 } as const;

export const OPTIONS = {
  workspace: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  force: { type: 'boolean' },
  watch: { type: 'boolean' },
  steps: { type: 'string' },
  stages: { type: 'string' },
  'router-steps': { type: 'string' },
  python: { type: 'string' },
  device: { type: 'string' },
  line: { type: 'string' },
  col: { type: 'string' },
  'max-tokens': { type: 'string' },
  'prompt-tokens': { type: 'string' },
  temperature: { type: 'string' },
  seed: { type: 'string' },
  windows: { type: 'string' },
  completions: { type: 'boolean' },
  positions: { type: 'string' },
  run: { type: 'string' },
  out: { type: 'string' },
  expert: { type: 'string' },
  resume: { type: 'boolean' },
  'keep-partial': { type: 'boolean' },
  'finish-now': { type: 'boolean' },
  verbose: { type: 'boolean' },
  minutes: { type: 'string' },
  'nproc-per-node': { type: 'string' },
  nnodes: { type: 'string' },
  'node-rank': { type: 'string' },
  'rdzv-endpoint': { type: 'string' },
  method: { type: 'string' },
  weights: { type: 'string' },
  density: { type: 'string' },
  rank: { type: 'string' },
  majority: { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string' },
  'api-key': { type: 'string' },
  'print-launch': { type: 'boolean' },
  cpu: { type: 'boolean' },
  cuda: { type: 'boolean' },
  venv: { type: 'string' },
  format: { type: 'string' },
  type: { type: 'string' },
} as const;

export type Values = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };

export class UsageError extends Error {}

export function intOption(values: Values, name: keyof Values, fallback?: number, min = 0): number | undefined {
  const n = numberOption(values, name, min, 'an integer');
  if (n !== undefined && !Number.isInteger(n)) throw new UsageError(`--${name} must be an integer ≥ ${min}, got "${values[name]}"`);
  return n ?? fallback;
}

export function numberOption(values: Values, name: keyof Values, min = 0, kind = 'a number'): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) throw new UsageError(`--${name} must be ${kind} ≥ ${min}, got "${raw}"`);
  return n;
}

export function parseStages(raw: string | undefined): TrainStage[] | undefined {
  if (raw === undefined) return undefined;
  const stages = raw.split(',').map((x) => x.trim()).filter(Boolean);
  const bad = stages.filter((x) => !TRAIN_STAGES.includes(x as TrainStage));
  if (bad.length || stages.length === 0) throw new UsageError(`--stages takes a comma-separated list of ${TRAIN_STAGES.join(', ')}; got "${raw}"`);
  return stages as TrainStage[];
}

/** The package root: the bundle runs from dist/, models/ and trainer/ sit beside it. */
export const productRoot = resolve(__dirname, '..');
export const product = productLayout(productRoot);

export function print(values: Values, human: string, json: unknown): void {
  process.stdout.write((values.json ? JSON.stringify(json) : human) + '\n');
}

/** The trainer's interpreter: --python, else what core/trainer/python.ts chooses. */
export const pythonOf = (values: Values): string => choosePython(productRoot, values.python).command;

/** Engine and trainer log lines, on stderr when MOA_VERBOSE is set. */
export const verboseLog = (line: string) => process.env['MOA_VERBOSE'] && process.stderr.write(line + '\n');

/** Resolves at Ctrl+C or SIGTERM: how a command that keeps running (serve, data --watch) is stopped. */
export function untilStopped(): Promise<void> {
  return new Promise((done) => process.once('SIGINT', () => done()).once('SIGTERM', () => done()));
}

/**
 * The workspace a command works on: --workspace, else the nearest folder at or above the current
 * one that holds .moa/moa.json (as git finds .git), else the current folder.
 */
export function workspaceOf(values: Values, cwd = process.cwd()): WorkspaceLayout {
  if (values.workspace !== undefined) return workspaceLayout(resolve(values.workspace));
  for (let dir = resolve(cwd); ; dir = dirname(dir)) {
    if (existsSync(join(dir, '.moa', 'moa.json'))) return workspaceLayout(dir);
    if (dirname(dir) === dir) return workspaceLayout(resolve(cwd));
  }
}
