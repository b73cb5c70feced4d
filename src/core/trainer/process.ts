import { spawn, type ChildProcess } from 'node:child_process';
import { delimiter } from 'node:path';
import { JsonLineParser } from './jsonLines';
import { parseTrainerEvent, type TrainerEvent } from './events';

export interface TrainerSpawnOptions {
  python: string;
  trainerDir: string;
  command: 'doctor' | 'train' | 'export' | 'pretrain';
  configPath?: string;
  cwd: string;
  env?: NodeJS.ProcessEnv;
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
}

export interface TrainerProcess {
  readonly pid: number | undefined;
  /** Graceful stop: the stop command, then SIGTERM, then SIGKILL, each after a grace period. */
  stop(graceMs?: number): void;
  readonly exited: Promise<TrainerExit>;
}

const STDERR_TAIL = 8192;

/** Spawns `python -m moa_trainer <command>` without a shell and streams its protocol events. */
export function spawnTrainer(opts: TrainerSpawnOptions): TrainerProcess {
  const args = ['-m', 'moa_trainer', opts.command];
  if (opts.configPath) args.push('--config', opts.configPath);
  const baseEnv = opts.env ?? process.env;
  const pythonPath = [opts.trainerDir, baseEnv['PYTHONPATH']].filter(Boolean).join(delimiter);
  const child: ChildProcess = spawn(opts.python, args, {
    cwd: opts.cwd,
    env: { ...baseEnv, PYTHONPATH: pythonPath, PYTHONUNBUFFERED: '1', PYTHONIOENCODING: 'utf-8' },
    stdio: ['pipe', 'pipe', 'pipe'],
    shell: false,
  });
  let stderrTail = '';
  let done: TrainerExit['done'];
  let error: TrainerExit['error'];
  const parser = new JsonLineParser({
    onJson: (value) => {
      const parsed = parseTrainerEvent(value);
      if (!parsed.ok) {
        opts.onNoise?.(`[protocol] ${parsed.problem}: ${JSON.stringify(value).slice(0, 200)}`);
        return;
      }
      if (parsed.event.type === 'done') done = parsed.event;
      if (parsed.event.type === 'error') error = parsed.event;
      opts.onEvent?.(parsed.event);
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
    child.on('error', (err) => {
      stderrTail += `\n${err.message}`;
      resolve({ code: null, signal: null, stderrTail, error: { type: 'error', message: `could not start ${opts.python}: ${err.message}`, hint: 'Install Python 3.10+ or set moa.pythonPath / --python.' } });
    });
    child.on('close', (code, signal) => {
      parser.end();
      timers.forEach(clearTimeout);
      resolve({ code, signal, stderrTail, done, error });
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
  if (exit.error) return exit.error.message + (exit.error.hint ? ` (${exit.error.hint})` : '');
  const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
  const tail = exit.stderrTail.trim().split('\n').slice(-8).join('\n');
  return `the trainer ${how}${tail ? `:\n${tail}` : ''}`;
}
