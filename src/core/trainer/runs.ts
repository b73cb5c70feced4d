import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { WorkspaceLayout } from '../paths';
import { MoaError } from '../util/errors';
import { writeJsonAtomic } from '../util/atomic';
import { readJsonObjectOr } from '../util/json';
import { parseTrainerEvent, type TrainerEvent } from './events';
import { releaseLock, tryLock } from '../util/pidLock';

export interface RunInfo {
  id: string;
  dir: string;
  eventsFile: string;
}

export function newRunId(now = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const stamp = `${now.getUTCFullYear()}${p(now.getUTCMonth() + 1)}${p(now.getUTCDate())}-${p(now.getUTCHours())}${p(now.getUTCMinutes())}${p(now.getUTCSeconds())}`;
  return `${stamp}-${randomBytes(2).toString('hex')}`;
}

export function createRun(layout: WorkspaceLayout, meta: Record<string, unknown>): RunInfo {
  const id = newRunId();
  const dir = join(layout.runsDir, id);
  mkdirSync(join(dir, 'checkpoints'), { recursive: true });
  writeJsonAtomic(join(dir, 'run.json'), { v: 1, id, created: new Date().toISOString(), status: 'running', ...meta });
  return { id, dir, eventsFile: join(dir, 'events.jsonl') };
}

export function finishRun(run: RunInfo, status: 'done' | 'stopped' | 'failed', extra: Record<string, unknown> = {}): void {
  const file = join(run.dir, 'run.json');
  const prev = readJsonObjectOr(file) ?? {};
  writeJsonAtomic(file, { ...prev, status, finished: new Date().toISOString(), ...extra });
}

/** Every event goes to disk as it arrives, so a restarted editor can redraw the whole history. */
export function appendEvent(run: RunInfo, event: TrainerEvent): void {
  appendFileSync(run.eventsFile, JSON.stringify({ v: 1, ...event }) + '\n');
}

export function readRunEvents(eventsFile: string): TrainerEvent[] {
  if (!existsSync(eventsFile)) return [];
  const out: TrainerEvent[] = [];
  for (const line of readFileSync(eventsFile, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const parsed = parseTrainerEvent(JSON.parse(line));
      if (parsed.ok) out.push(parsed.event);
    } catch {
      // a torn last line after a crash is skipped, the rest of the history still loads
    }
  }
  return out;
}

export function listRuns(layout: WorkspaceLayout): string[] {
  if (!existsSync(layout.runsDir)) return [];
  return readdirSync(layout.runsDir).filter((n) => /^\d{8}-\d{6}-[0-9a-f]{4}$/.test(n)).sort();
}

/** One training run per workspace. A lock whose owner died is taken over, so a crash never leaves it stuck. */
export function acquireRunLock(layout: WorkspaceLayout, runId: string): () => void {
  mkdirSync(layout.runsDir, { recursive: true });
  const file = join(layout.runsDir, 'train.lock');
  const held = tryLock(file, { run: runId });
  if (held) throw new MoaError(`${file}: run ${String(held['run'])} (pid ${held.pid}) is still training in this workspace`, 'Wait for it or cancel it first.');
  return () => releaseLock(file);
}
