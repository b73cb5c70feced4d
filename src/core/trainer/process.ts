import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { delimiter } from 'node:path';
import { JsonLineParser } from './jsonLines';
import { parseTrainerEvent, type TrainerEvent } from './events';
import { MoaError, errorMessage } from '../util/errors';

export interface TrainerSpawnOptions {
  python: string;
  trainerDir: string;
  command: 'doctor' | 'train' | 'export' | 'pretrain' | 'merge';
  configPath?: string;
  /** Extra arguments after the command (`--resume`). */
  extraArgs?: string[];
  env?: NodeJS.ProcessEnv;
  /** Several processes through torchrun (data parallel); absent or one process: a plain start. */
  processes?: DistLaunch;
  onEvent?: (e: TrainerEvent) => void;
  /** A stdout line that is not a protocol event (logged, never fatal). */
  onNoise?: (line: string) => void;
  onStderr?: (text: string) => void;
}

export interface TrainerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last few KiB of stderr, for the error report. */
  stderrTail: string;
  done?: TrainerEvent & { type: 'done' };
  error?: TrainerEvent & { type: 'error' };
  /** Our own side failed while the trainer ran (an event could not be persisted, say): the run failed. */
  hostError?: string;
}

/** A run succeeded only if the trainer said `done` and then exited cleanly. */
export function succeeded(exit: TrainerExit): exit is TrainerExit & { done: TrainerEvent & { type: 'done' } } {
  return exit.done !== undefined && exit.code === 0 && !exit.hostError;
}

export interface TrainerProcess {
  readonly pid: number | undefined;
  /** Graceful stop: the stop command, then SIGTERM, then SIGKILL, each after a grace period. */
  stop(graceMs?: number): void;
  readonly exited: Promise<TrainerExit>;
}

const STDERR_TAIL = 8192;
const STDIO_DRAIN_MS = 2000;

/**
 * How Python is started so that nothing in a workspace can be imported in place of our code: the
 * working directory (first on `sys.path` under `-m`) is the trainer's own folder, never the
 * workspace or the caller's directory, so a `torch.py` or `moa_trainer/` planted at a repository's
 * root is never seen; PYTHONSAFEPATH (3.11+) also keeps the unsafe path off. Every trainer command
 * goes through here (test/integration/security.test.ts plants exactly such modules).
 */
/** What every trainer start sets besides PYTHONPATH (also printed by launchScript.ts for other machines). */
export const TRAINER_ENV = { PYTHONSAFEPATH: '1', PYTHONUNBUFFERED: '1', PYTHONIOENCODING: 'utf-8' } as const;

export function trainerLaunch(python: string, trainerDir: string, args: string[], baseEnv: NodeJS.ProcessEnv = process.env, processes?: DistLaunch) {
  const pythonPath = [trainerDir, baseEnv['PYTHONPATH']].filter(Boolean).join(delimiter);
  return {
    command: python,
    args: [...torchrunArgs(processes), '-m', 'moa_trainer', ...args],
    options: {
      cwd: trainerDir,
      env: { ...baseEnv, PYTHONPATH: pythonPath, ...TRAINER_ENV },
    },
  };
}

/**
 * Data-parallel training through torchrun, PyTorch's own launcher (we drive it; we do not write
 * one): processes per machine, and for several machines their count, this one's rank and where
 * they meet. Rank 0 alone emits events; a stop reaching any rank stops all (dist.py).
 */
export interface DistLaunch {
  nprocPerNode: number;
  nnodes?: number;
  nodeRank?: number;
  /** HOST:PORT of the rendezvous (several machines only). */
  rdzvEndpoint?: string;
}

/** The `python -m torch.distributed.run …` arguments before `-m moa_trainer`; none for one process. */
export function torchrunArgs(p: DistLaunch | undefined): string[] {
  if (!p || (p.nprocPerNode <= 1 && (p.nnodes ?? 1) <= 1)) return [];
  const nodes = p.nnodes ?? 1;
  const where = nodes > 1
    ? ['--nnodes', String(nodes), '--node-rank', String(p.nodeRank ?? 0), '--rdzv-backend', 'c10d', '--rdzv-endpoint', p.rdzvEndpoint ?? '']
    : ['--standalone'];
  // --tee 2: each rank's stderr prefixed "[default<local rank>]:", so a failure names whose it was
  // (stdout, rank 0's protocol events, stays as it is).
  return ['-m', 'torch.distributed.run', ...where, '--nproc-per-node', String(p.nprocPerNode), '--tee', '2'];
}

/** CUDA devices the interpreter's torch sees (0 without CUDA), asked as every trainer start is isolated. */
export function visibleGpus(python: string, trainerDir: string): number {
  const probe = trainerLaunch(python, trainerDir, []);
  const r = spawnSync(python, ['-c', 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)'], { ...probe.options, encoding: 'utf8', shell: false, timeout: 120_000 });
  const n = Number(r.stdout?.trim());
  if (r.status !== 0 || !Number.isInteger(n)) throw new MoaError(`${python}: could not ask torch how many GPUs it sees (${(r.stderr ?? '').trim().split('\n').pop() ?? 'no output'})`, 'Run "moa doctor".');
  return n;
}

/** Spawns `python -m moa_trainer <command>` without a shell and streams its protocol events. */
export function spawnTrainer(opts: TrainerSpawnOptions): TrainerProcess {
  const args = [opts.command, ...(opts.configPath ? ['--config', opts.configPath] : []), ...(opts.extraArgs ?? [])];
  const launch = trainerLaunch(opts.python, opts.trainerDir, args, opts.env ?? process.env, opts.processes);
  const child: ChildProcess = spawn(launch.command, launch.args, {
    ...launch.options,
    stdio: ['pipe', 'pipe', 'pipe'],
    shell: false,
  });
  let stderrTail = '';
  let done: TrainerExit['done'];
  let error: TrainerExit['error'];
  let hostError: string | undefined;
  const stopNow = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  };
  const parser = new JsonLineParser({
    onJson: (value) => {
      const parsed = parseTrainerEvent(value);
      if (!parsed.ok) {
        opts.onNoise?.(`[protocol] ${parsed.problem}: ${JSON.stringify(value).slice(0, 200)}`);
        return;
      }
      if (parsed.event.type === 'done') done = parsed.event;
      if (parsed.event.type === 'error') error = parsed.event;
      if (hostError) return;
      try {
        opts.onEvent?.(parsed.event);
      } catch (e) {
        // The run cannot be recorded (ENOSPC writing events.jsonl, say): it has failed, whatever
        // the trainer goes on to report, and it is stopped rather than left running unrecorded.
        hostError = errorMessage(e);
        stopNow();
      }
    },
    onNoise: (line) => opts.onNoise?.(line),
  });
  child.stdout!.on('data', (chunk: Buffer) => parser.push(chunk));
  child.stderr!.on('data', (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    stderrTail = (stderrTail + text).slice(-STDERR_TAIL);
    opts.onStderr?.(text);
  });
  // A closed stdin (the trainer exited first) must not crash the host.
  child.stdin!.on('error', () => undefined);
  const timers: NodeJS.Timeout[] = [];
  const exited = new Promise<TrainerExit>((resolve) => {
    let settled = false;
    const settle = (code: number | null, signal: NodeJS.Signals | null) => {
      if (settled) return;
      settled = true;
      parser.end();
      timers.forEach(clearTimeout);
      resolve({ code, signal, stderrTail, done, error, hostError });
    };
    child.on('error', (err) => {
      stderrTail += `\n${err.message}`;
      error = { type: 'error', message: `could not start ${opts.python}: ${err.message}`, hint: 'Install Python 3.10+ or set moa.pythonPath / --python.' };
      settle(null, null);
    });
    child.on('exit', (code, signal) => {
      // Normally the pipes close right after; a grandchild that inherited stdout can keep them
      // open for ever, so the trainer's own exit is what ends the run, after a short drain.
      const drain = setTimeout(() => {
        child.stdout!.destroy();
        child.stderr!.destroy();
        settle(code, signal);
      }, STDIO_DRAIN_MS);
      child.on('close', () => {
        clearTimeout(drain);
        settle(code, signal);
      });
    });
  });
  return {
    pid: child.pid,
    exited,
    stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.stdin!.write(JSON.stringify({ cmd: 'stop' }) + '\n');
      timers.push(
        setTimeout(() => child.kill('SIGTERM'), graceMs),
        setTimeout(() => child.kill('SIGKILL'), graceMs * 2),
      );
    },
  };
}

/** One line for a failed trainer: the protocol error if there was one, else exit code and stderr. */
export function describeFailure(exit: TrainerExit): string {
  if (exit.hostError) return exit.hostError;
  // Under torchrun the first rank to fail is the cause; rank 0's own error (a lost peer) is the consequence.
  const cause = torchrunRootCause(exit.stderrTail);
  if (cause) {
    const then = exit.error ? `; rank 0 then reported: ${exit.error.message}` : '';
    return `${cause}${then}`;
  }
  if (exit.error) return exit.error.message + (exit.error.hint ? ` (${exit.error.hint})` : '');
  const how = exit.signal ? `was killed by ${exit.signal}` : exit.done ? `reported done, then exited with code ${exit.code}` : `exited with code ${exit.code}`;
  const tail = exit.stderrTail.trim().split('\n').slice(-8).join('\n');
  return `the trainer ${how}${tail ? `:\n${tail}` : ''}`;
}

/**
 * torchrun's summary of a failed multi-process run ("Root Cause (first observed failure)"), in
 * one line naming the rank, its host and how it ended; undefined when `stderr` has none.
 */
export function torchrunRootCause(stderr: string): string | undefined {
  const at = stderr.lastIndexOf('Root Cause (first observed failure):');
  if (at < 0) return undefined;
  const block = stderr.slice(at);
  const field = (name: string) => new RegExp(`^\\s*${name}\\s*:\\s*(.*)$`, 'm').exec(block)?.[1]?.trim();
  const rank = /^(\d+)(?: \(local_rank: (\d+)\))?/.exec(field('rank') ?? '');
  if (!rank) return undefined;
  const exit = field('exitcode') ?? '?';
  const code = /^(-?\d+)/.exec(exit)?.[1] ?? exit;
  const signal = /\((SIG[A-Z0-9]+)\)/.exec(exit)?.[1];
  const traceback = field('traceback');
  const detail = traceback && !/^Signal \d+/.test(traceback) && !/^To enable traceback/.test(traceback) ? ` (${traceback})` : '';
  // That rank's own last stderr lines, as --tee 2 prefixed them.
  const own = rank[2] === undefined ? [] : stderr.slice(0, at).split('\n').filter((l) => l.startsWith(`[default${rank[2]}]:`)).map((l) => l.slice(`[default${rank[2]}]:`.length)).filter((l) => l.trim());
  const tail = own.length ? `; its stderr ended:\n${own.slice(-4).join('\n')}` : '';
  return `rank ${rank[1]}${rank[2] !== undefined ? ` (local rank ${rank[2]})` : ''} on ${field('host') ?? 'its host'} failed first: exit code ${code}${signal ? ` (${signal})` : ''}${detail}${tail}`;
}
