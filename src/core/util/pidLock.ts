import { linkSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tempPathFor } from './atomic';
import { pidAlive } from './pid';

/** What a lock file records: the owner's process id, and whatever its taker added (a run id, say). */
export interface LockHolder {
  pid: number;
  [key: string]: unknown;
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
    writeFileSync(tmp, JSON.stringify({ ...info, pid: process.pid }));
    try {
      linkSync(tmp, file);
      return undefined;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 4) throw e;
    } finally {
      rmSync(tmp, { force: true });
    }
    const holder = readHolder(file);
    if (holder === 'gone') continue; // released between our link and our read
    if (holder && holder.pid !== process.pid && pidAlive(holder.pid)) return holder;
    rmSync(file, { force: true });
  }
}

export function releaseLock(file: string): void {
  rmSync(file, { force: true });
}
