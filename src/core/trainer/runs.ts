import { appendFileSync, closeSync, existsSync, mkdirSync, readdirSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { WorkspaceLayout } from '../paths';
import { MoaError, errorMessage, fileError } from '../util/errors';
import { openRegularFile } from '../util/fsRead';
import { writeJsonAtomic } from '../util/atomic';
import { readJsonObjectOr } from '../util/json';
import { addLockHolders, holderAlive, lockHolder, releaseLock, tryLock } from '../util/pidLock';
import { parseTrainerEvent, type TrainerEvent } from './events';
import { JsonLineParser } from './jsonLines';

/**
 * The run store: where runs live, what is in a run's folder, its true status and its events.
 * `.moa/runs/<id>/` holds run.json, events.jsonl (every trainer event), train-config.json and
 * checkpoints/.
 */
export interface RunInfo {
  id: string;
  dir: string;
  eventsFile: string;
  /** run.json: status, created, finished, the request's facts. */
  metaFile: string;
  /** eval.json: the `moa eval` made on this run's experts, when it ended done. */
  evalFile: string;
}

export type RunStatus = 'running' | 'done' | 'stopped' | 'failed' | 'interrupted' | 'unknown';

const RUN_ID = /^\d{8}-\d{6}-[0-9a-f]{4}$/;

export function newRunId(now = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const stamp = `${now.getUTCFullYear()}${p(now.getUTCMonth() + 1)}${p(now.getUTCDate())}-${p(now.getUTCHours())}${p(now.getUTCMinutes())}${p(now.getUTCSeconds())}`;
  return `${stamp}-${randomBytes(2).toString('hex')}`;
}

export function runInfo(layout: WorkspaceLayout, id: string): RunInfo {
  if (!RUN_ID.test(id)) throw new MoaError(`"${id}" is not a run id (YYYYMMDD-HHMMSS-xxxx)`, 'See the Runs view or .moa/runs/.');
  const dir = join(layout.runsDir, id);
  return { id, dir, eventsFile: join(dir, 'events.jsonl'), metaFile: join(dir, 'run.json'), evalFile: join(dir, 'eval.json') };
}

export const trainConfigPath = (run: RunInfo): string => join(run.dir, 'train-config.json');

export function createRun(layout: WorkspaceLayout, id: string, meta: Record<string, unknown>): RunInfo {
  const run = runInfo(layout, id);
  mkdirSync(join(run.dir, 'checkpoints'), { recursive: true });
  writeJsonAtomic(run.metaFile, { v: 1, id: run.id, created: new Date().toISOString(), status: 'running', pid: process.pid, ...meta });
  return run;
}

export function updateRun(run: RunInfo, fields: Record<string, unknown>): void {
  writeJsonAtomic(run.metaFile, { ...readJsonObjectOr(run.metaFile), ...fields });
}

export function finishRun(run: RunInfo, status: 'done' | 'stopped' | 'failed', extra: Record<string, unknown> = {}): void {
  updateRun(run, { status, finished: new Date().toISOString(), ...extra });
}

/** Every event goes to disk as it arrives, so a restarted editor can redraw the whole history. */
export function appendEvent(run: RunInfo, event: TrainerEvent): void {
  try {
    appendFileSync(run.eventsFile, JSON.stringify({ v: 1, ...event }) + '\n');
  } catch (e) {
    throw fileError(run.eventsFile, e);
  }
}

export interface RunLog {
  events: TrainerEvent[];
  /** Lines that were not protocol events (a torn last line after a crash, say). */
  unreadable: number;
  /** Why the file itself could not be read. */
  problem?: string;
}

/** Events other than steps kept from one file at most: a hostile or runaway file stays bounded. */
const MAX_OTHER_EVENTS = 200_000;

/**
 * A run's events, read in chunks so a file of any size is fine. Per (stage, expert), step events
 * past `maxPoints` are thinned evenly (the stride doubles each time the series fills up), the
 * first and the latest always kept, so memory stays bounded and curves keep their shape.
 */
export function readRunLog(eventsFile: string, maxPoints = 20_000): RunLog {
  const log: RunLog = { events: [], unreadable: 0 };
  if (!existsSync(eventsFile)) return log;
  type At = { i: number; e: TrainerEvent };
  const others: At[] = [];
  const series = new Map<string, { stride: number; seen: number; points: At[]; tail?: At }>();
  let line = 0;
  const keep = (e: TrainerEvent) => {
    const at = { i: line++, e };
    if (e.type !== 'step') {
      if (others.length < MAX_OTHER_EVENTS) others.push(at);
      return;
    }
    const key = `${e.stage}\0${e.expert}`;
    let s = series.get(key);
    if (!s) series.set(key, (s = { stride: 1, seen: 0, points: [] }));
    if (s.seen++ % s.stride === 0) {
      s.points.push(at);
      s.tail = undefined;
      if (s.points.length > maxPoints) {
        s.points = s.points.filter((_, k) => k % 2 === 0);
        s.stride *= 2;
      }
    } else s.tail = at;
  };
  const parser = new JsonLineParser({
    onJson: (value) => {
      const parsed = parseTrainerEvent(value);
      if (parsed.ok) keep(parsed.event);
      else log.unreadable++;
    },
    onNoise: () => void log.unreadable++,
  });
  let opened: ReturnType<typeof openRegularFile>;
  try {
    opened = openRegularFile(eventsFile);
  } catch (e) {
    return { ...log, problem: errorMessage(e) };
  }
  const { fd, st } = opened;
  try {
    const buf = Buffer.allocUnsafe(Math.max(1, Math.min(1 << 20, st.size)));
    for (let pos = 0; ; ) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) break;
      parser.push(buf.subarray(0, n));
      pos += n;
    }
    parser.end();
  } finally {
    closeSync(fd);
  }
  const all = [...others];
  for (const s of series.values()) all.push(...s.points, ...(s.tail ? [s.tail] : []));
  log.events = all.sort((a, b) => a.i - b.i).map((a) => a.e);
  return log;
}

export function readRunEvents(eventsFile: string): TrainerEvent[] {
  return readRunLog(eventsFile).events;
}

export function listRuns(layout: WorkspaceLayout): string[] {
  if (!existsSync(layout.runsDir)) return [];
  return readdirSync(layout.runsDir).filter((n) => RUN_ID.test(n)).sort();
}

const lockFile = (layout: WorkspaceLayout) => join(layout.runsDir, 'train.lock');

/**
 * A run's true status. run.json says "running" from the start; if no live process holds the run
 * lock for it any more (the CLI and its trainer were killed), the run was interrupted.
 */
export function runStatus(layout: WorkspaceLayout, id: string, meta = readJsonObjectOr(runInfo(layout, id).metaFile)): RunStatus {
  const status = meta?.['status'];
  if (status === 'running') {
    const holder = lockHolder(lockFile(layout));
    return holder?.['run'] === id && holderAlive(holder, true) ? 'running' : 'interrupted';
  }
  if (status === 'external') return externalStatus(runInfo(layout, id));
  return status === 'done' || status === 'stopped' || status === 'failed' ? status : 'unknown';
}

/**
 * A run started elsewhere (`moa train --print-launch`) is as far as its events say: nothing here
 * holds a lock or a process for it. Running until the trainer reports its end.
 */
function externalStatus(run: RunInfo): RunStatus {
  const last = readRunEvents(run.eventsFile).filter((e) => e.type === 'done' || e.type === 'error').pop();
  if (!last) return 'running';
  return last.type === 'error' ? 'failed' : last.stopped ? 'stopped' : 'done';
}

/** The newest run that ended before its end (stopped, failed, interrupted) and left a checkpoint. */
export function latestResumable(layout: WorkspaceLayout): RunInfo | undefined {
  for (const id of listRuns(layout).reverse()) {
    const status = runStatus(layout, id);
    if (status === 'done') return undefined;
    if (status === 'running') continue;
    const run = runInfo(layout, id);
    if (hasCheckpoint(run) && existsSync(trainConfigPath(run))) return run;
  }
  return undefined;
}

export function hasCheckpoint(run: RunInfo): boolean {
  try {
    return readdirSync(join(run.dir, 'checkpoints')).some((n) => n.endsWith('.safetensors') && !n.startsWith('.'));
  } catch {
    return false;
  }
}

export interface RunLock {
  /** Adds the trainer's pid: the lock stays held while it lives, even if this process dies. */
  addTrainer(pid: number): void;
  release(): void;
}

/**
 * One training run per workspace. The lock names this process and, once started, its trainer; a
 * lock whose processes all died is taken over, so a crash never leaves it stuck.
 */
export function acquireRunLock(layout: WorkspaceLayout, runId: string): RunLock {
  mkdirSync(layout.runsDir, { recursive: true });
  const file = lockFile(layout);
  const held = tryLock(file, { run: runId });
  if (held) {
    const trainer = Array.isArray(held.pids) && held.pids.length ? `, trainer pid ${held.pids.join(', ')}` : '';
    throw new MoaError(`${file}: run ${String(held['run'])} (pid ${held.pid}${trainer}) is still training in this workspace`, 'Wait for it or cancel it first.');
  }
  return { addTrainer: (pid) => addLockHolders(file, [pid]), release: () => releaseLock(file) };
}
