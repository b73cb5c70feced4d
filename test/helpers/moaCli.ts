// Running the real `moa` CLI bundle against a temporary workspace, and the small workspaces the
// reliability tests train on.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './tmp';

export const root = repoRoot();
export const cli = join(root, 'dist', 'cli.js');
export const venvPython = join(root, '.venv', 'bin', 'python');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `moa ARGS --workspace WS`, run to its end. */
export function moa(ws: string, args: string[], opts: { env?: NodeJS.ProcessEnv; nodeArgs?: string[]; timeout?: number } = {}): CliResult {
  const r = spawnSync(process.execPath, [...(opts.nodeArgs ?? []), cli, ...args, '--workspace', ws], {
    cwd: ws,
    encoding: 'utf8',
    env: { ...process.env, ...opts.env },
    timeout: opts.timeout ?? 600_000,
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** The same, started in the background. */
export function moaAsync(ws: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawn(process.execPath, [cli, ...args, '--workspace', ws], { cwd: ws, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Two small domains (Python, Markdown) with enough text for a few training windows each. */
export function twoDomainFiles(n = 8): Record<string, string> {
  const files: Record<string, string> = {};
  for (let i = 0; i < n; i++) {
    files[`src/mod${i}.py`] = `import os\n\n\ndef load_${i}(path, limit=${i + 3}):\n    """Read the first lines of a file."""\n    with open(path) as handle:\n        lines = handle.readlines()\n    return [line.strip() for line in lines[:limit]]\n\n\nclass Store${i}:\n    def __init__(self, name):\n        self.name = name\n        self.items = {}\n\n    def put(self, key, value):\n        self.items[key] = value\n        return len(self.items)\n`;
    files[`docs/guide${i}.md`] = `# Guide ${i}\n\nThis guide explains how to set up the project on a new machine.\n\n## Install\n\nRun the installer and follow the prompts. The default options work for most people.\n\n## Usage\n\n- Open the dashboard from the menu.\n- Pick a workspace and press **Start**.\n\n> Note: the first run downloads nothing and takes a minute.\n`;
  }
  return files;
}

/** An executable `--python` that runs `fixture` (under test/fixtures) with the real interpreter. */
export function pythonWrapper(dir: string, fixture: string): string {
  const file = join(dir, fixture.split('/').pop()!);
  writeFileSync(file, `#!${venvPython}\n` + readFileSync(join(root, 'test', 'fixtures', fixture), 'utf8'));
  chmodSync(file, 0o755);
  return file;
}

/** Every path under `dir` (relative), folders included. */
export function walk(dir: string, rel = ''): string[] {
  let names: string[];
  try {
    names = readdirSync(join(dir, rel));
  } catch {
    return [];
  }
  return names.flatMap((n) => {
    const p = rel ? `${rel}/${n}` : n;
    return statSync(join(dir, p)).isDirectory() ? [p, ...walk(dir, p)] : [p];
  });
}

/** Temp files and staging folders a writer leaves only when it is killed (util/atomic's pattern). */
export const TEMP_NAME = /(^|\/)\.[^/]+\.tmp-\d+-[0-9a-f]{8}$/;
