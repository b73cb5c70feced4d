import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { MoaError, throwIfCancelled } from '../util/errors';
import { writeFileAtomic } from '../util/atomic';

/**
 * The trainer's own Python environment, made for a user who has only a system Python: a virtual
 * environment in a machine-wide folder (never inside a workspace: a workspace must not choose the
 * interpreter), with trainer/requirements.txt installed by pip from whatever index pip is
 * configured with (pip.conf, PIP_INDEX_URL: we never name one). `moa setup` and the editor's
 * "Set Up Trainer Environment" both make it; choosePython finds it.
 */

/** Where the environment lives: $MOA_HOME/trainer-env, else the XDG data folder's moa-studio/trainer-env. */
export function trainerEnvDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env['MOA_HOME']) return join(env['MOA_HOME'], 'trainer-env');
  const data = env['XDG_DATA_HOME'] || (process.platform === 'win32' ? env['LOCALAPPDATA'] ?? join(homedir(), 'AppData', 'Local') : join(homedir(), '.local', 'share'));
  return join(data, 'moa-studio', 'trainer-env');
}

export function envPython(dir: string): string {
  return process.platform === 'win32' ? join(dir, 'Scripts', 'python.exe') : join(dir, 'bin', 'python');
}

/** The interpreters tried, newest first, when none is given. */
const CANDIDATES = ['python3.13', 'python3.12', 'python3.11', 'python3.10', 'python3', 'python'];

/** `major.minor` of an interpreter, or undefined when it does not run. */
export function pythonVersion(python: string): string | undefined {
  const r = spawnSync(python, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], { encoding: 'utf8', shell: false, timeout: 30_000 });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

export function atLeast310(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 3 || (major === 3 && minor >= 10);
}

/** A Python ≥ 3.10 to build the environment with: the one given (checked), else the newest found on PATH. */
export function findBasePython(given?: string): { python: string; version: string } {
  for (const python of given ? [given] : CANDIDATES) {
    const version = pythonVersion(python);
    if (version && atLeast310(version)) return { python, version };
    if (given) throw new MoaError(`${given}: ${version ? `Python ${version}; the trainer needs 3.10 or newer` : 'does not run'}`, 'Give another interpreter with --python.');
  }
  throw new MoaError('no Python 3.10 or newer was found on PATH (tried ' + CANDIDATES.join(', ') + ')',
    'Install one (Debian/Ubuntu: sudo apt-get install -y python3 python3-venv), or give its path with --python.');
}

/** NVIDIA GPUs nvidia-smi lists (0 when it is absent or fails). */
export function nvidiaGpus(): number {
  const r = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8', shell: false, timeout: 30_000 });
  return r.status === 0 ? r.stdout.split('\n').filter((l) => /^GPU \d+:/.test(l)).length : 0;
}

export type TorchBuild = 'cpu' | 'cuda' | 'auto';

export interface SetupRequest {
  dir: string;
  requirements: string;
  /** The interpreter to build from (default: the newest ≥ 3.10 on PATH). */
  python?: string;
  /** Which torch the user wants; `auto` follows nvidia-smi. Checked after pip, never forced by an index. */
  build: TorchBuild;
  onLine?: (line: string) => void;
  signal?: AbortSignal;
}

export interface SetupResult {
  python: string;
  torch: string;
  /** torch's CUDA version, or null for a CPU build. */
  cuda: string | null;
  gpus: number;
  /** What was wanted and what pip gave, in words; a mismatch says how to fix it. */
  verdict: string;
  reinstalled: boolean;
}

function run(cmd: string, args: string[], onLine: ((l: string) => void) | undefined, signal: AbortSignal | undefined): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { shell: false, stdio: ['ignore', 'pipe', 'pipe'] });
    let rest = '';
    const lines = (b: Buffer) => {
      const parts = (rest + b.toString('utf8')).split('\n');
      rest = parts.pop() ?? '';
      for (const p of parts) if (p.trim()) onLine?.(p);
    };
    child.stdout.on('data', lines);
    child.stderr.on('data', lines);
    const abort = () => child.kill('SIGTERM');
    signal?.addEventListener('abort', abort, { once: true });
    child.on('error', reject);
    child.on('close', (code) => {
      signal?.removeEventListener('abort', abort);
      if (rest.trim()) onLine?.(rest);
      resolve(code);
    });
  });
}

/**
 * Creates (or completes) the environment and installs the requirements; a run that failed or was
 * cancelled is finished by the next (pip skips what is installed). Reinstalls only when the
 * requirements changed. Then asks torch what it is.
 */
export async function setupTrainerEnv(req: SetupRequest): Promise<SetupResult> {
  const py = envPython(req.dir);
  const stamp = join(req.dir, '.moa-requirements.sha256');
  const want = createHash('sha256').update(readFileSync(req.requirements)).digest('hex');
  let reinstalled = false;
  if (!existsSync(py)) {
    const base = findBasePython(req.python);
    req.onLine?.(`creating ${req.dir} with ${base.python} (Python ${base.version})`);
    const code = await run(base.python, ['-m', 'venv', req.dir], req.onLine, req.signal);
    throwIfCancelled(req.signal, 'setting up the trainer environment', 'Run it again to finish.');
    if (code !== 0 || !existsSync(py)) throw new MoaError(`${base.python} -m venv ${req.dir} failed`, 'On Debian/Ubuntu: sudo apt-get install -y python3-venv, then run it again.');
  }
  if (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== want) {
    req.onLine?.(`installing ${req.requirements} with pip (its own configuration chooses the index)`);
    // --retries 0: an unreachable index fails at once instead of after minutes of retries.
    const code = await run(py, ['-m', 'pip', 'install', '--disable-pip-version-check', '--retries', '0', '-r', req.requirements], req.onLine, req.signal);
    throwIfCancelled(req.signal, 'setting up the trainer environment', 'Run it again to finish: what pip installed is kept.');
    if (code !== 0) throw new MoaError(`pip could not install ${req.requirements} into ${req.dir} (exit ${code})`, 'See the pip output above; behind a proxy or offline, configure pip (pip.conf or PIP_INDEX_URL), then run it again.');
    writeFileAtomic(stamp, want);
    reinstalled = true;
  }
  const probe = spawnSync(py, ['-c', 'import json, torch; print(json.dumps([torch.__version__, torch.version.cuda]))'], { encoding: 'utf8', shell: false, timeout: 120_000 });
  if (probe.status !== 0) throw new MoaError(`${py}: torch does not import (${probe.stderr.trim().split('\n').pop()})`, 'Delete the folder and run the setup again.');
  const [torch, cuda] = JSON.parse(probe.stdout.trim()) as [string, string | null];
  const gpus = nvidiaGpus();
  return { python: py, torch, cuda, gpus, verdict: torchVerdict(req.build, cuda, gpus), reinstalled };
}

/** What was wanted, what was installed, and the fix when they differ (pure). */
export function torchVerdict(build: TorchBuild, cuda: string | null, gpus: number): string {
  const want = build === 'auto' ? (gpus > 0 ? 'cuda' : 'cpu') : build;
  const why = build === 'auto' ? (gpus > 0 ? ` (nvidia-smi lists ${gpus} GPU${gpus > 1 ? 's' : ''})` : ' (nvidia-smi finds no NVIDIA GPU)') : ' (asked for)';
  const have = cuda ? `a CUDA ${cuda} build` : 'a CPU build';
  if (want === 'cuda' && !cuda) return `${have} of torch, but a CUDA build is wanted${why}: point pip at PyTorch's CUDA wheels (for example PIP_EXTRA_INDEX_URL set to the index pytorch.org gives for your CUDA version) and run the setup again.`;
  if (want === 'cpu' && cuda) return `${have} of torch; it runs on the CPU too${why}. For the smaller CPU-only build, point pip at PyTorch's CPU wheels (PIP_EXTRA_INDEX_URL) and run the setup again.`;
  return `${have} of torch, as wanted${why}.`;
}

/** A failure the setup fixes: no Python at the chosen path, or one without torch. */
export function needsSetup(message: string): boolean {
  return /PyTorch is not importable|No module named '?torch|spawn \S*python\S* ENOENT/i.test(message);
}
