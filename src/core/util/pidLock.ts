import { linkSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tempPathFor, writeJsonAtomic } from './atomic';
import { fileError } from './errors';
import { pidAlive } from './pid';

/**
 * What a lock file records: the owner's process id, and whatever its taker added (a run id, say).
 * `pids` lists further processes that hold it with the owner (a trainer the owner started): the
 * lock is held while any of them lives, so a killed owner does not free it under a live child.
 */
export interface LockHolder {
  pid: number;
  pids?: number[];
  [key: string]: unknown;
}

/** Whether any process that a holder names is alive; the caller counts only with `self`. */
export function holderAlive(holder: LockHolder, self = false): boolean {
  const pids = [holder.pid, ...(Array.isArray(holder.pids) ? holder.pids : [])].filter((p) => Number.isInteger(p) && p > 0);
  return pids.some((p) => (p === process.pid ? self : pidAlive(p)));
}

/** Who holds a lock file now, as recorded (undefined: no file, or not a lock). */
export function lockHolder(file: string): LockHolder | undefined {
  const h = readHolder(file);
  return h === 'gone' ? undefined : h;
}

/** The holder recorded in a lock file; `gone` when there is no file, undefined when it cannot be read. */
function readHolder(file: string): LockHolder | 'gone' | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return 'gone';
  }
  try {
    const j = JSON.parse(text) as unknown;
    // A bare number is a pid too: the simplest lock a person or a script can write.
    const pid = typeof j === 'number' ? j : (j as { pid?: unknown } | null)?.pid;
    return typeof pid === 'number' && Number.isInteger(pid) && pid > 0 ? { ...(typeof j === 'object' ? (j as object) : {}), pid } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes `file` as a lock held by this process (recording `info` beside the pid), unless a live
 * process holds it: then returns that holder and takes nothing. The file appears whole or not at
 * all (written aside, then hard-linked into place, which fails if it exists). A lock whose owner
 * died, that no one can read, or that this process left, is taken over, so a crash never leaves
 * it stuck.
 */
export function tryLock(file: string, info: Record<string, unknown> = {}): LockHolder | undefined {
  for (let attempt = 0; ; attempt++) {
    const tmp = tempPathFor(file);
    try {
      writeFileSync(tmp, JSON.stringify({ ...info, pid: process.pid }));
      linkSync(tmp, file);
      return undefined;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 4) throw fileError(file, e);
    } finally {
      rmSync(tmp, { force: true });
    }
    const holder = readHolder(file);
    if (holder === 'gone') continue; // released between our link and our read
    if (holder && holder.pid !== process.pid && holderAlive(holder)) return holder;
    rmSync(file, { force: true });
  }
}

export function releaseLock(file: string): void {
  rmSync(file, { force: true });
}

/** Adds processes (a spawned trainer) to a lock this process holds: they keep it held. */
export function addLockHolders(file: string, pids: number[], info: Record<string, unknown> = {}): void {
  const holder = readHolder(file);
  if (!holder || holder === 'gone' || holder.pid !== process.pid) return;
  writeJsonAtomic(file, { ...holder, ...info, pids: [...(holder.pids ?? []), ...pids] });
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Runs `fn` holding `file` as a lock, waiting (synchronously, in short sleeps) up to `waitMs` for a
 * live holder to let go; `busy` builds the error when it does not. For locks held for milliseconds:
 * read-modify-write of a small state file, say.
 */
export function withLock<T>(file: string, fn: () => T, waitMs: number, busy: (holder: LockHolder) => Error): T {
  const deadline = Date.now() + waitMs;
  for (let holder = tryLock(file); holder; holder = tryLock(file)) {
    if (Date.now() > deadline) throw busy(holder);
    sleepSync(10);
  }
  try {
    return fn();
  } finally {
    releaseLock(file);
  }
}
