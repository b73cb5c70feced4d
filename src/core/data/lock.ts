import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { WorkspaceLayout } from '../paths';
import { MoaError } from '../util/errors';
import { releaseLock, tryLock } from '../util/pidLock';

const held = new Set<string>();

/** The datasets stayed locked by another process for the whole wait. */
export class DataLockBusy extends MoaError {}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Runs `fn` holding the datasets lock: a watcher appending to the shards, a full rebuild and a
 * compaction before training must not interleave. Held for milliseconds to seconds, so waiting
 * is synchronous (callers on an event loop pass `waitMs` 0 and retry later); a lock whose owner
 * died is taken over.
 */
export function withDataLock<T>(layout: WorkspaceLayout, fn: () => T, waitMs = 60_000): T {
  mkdirSync(layout.dataDir, { recursive: true });
  const file = join(layout.dataDir, '.lock');
  if (held.has(file)) return fn(); // nested: a rebuild that compacts, say
  const deadline = Date.now() + waitMs;
  for (let holder = tryLock(file); holder; holder = tryLock(file)) {
    if (Date.now() > deadline) {
      throw new DataLockBusy(`${file}: the datasets are locked by process ${holder.pid}`, 'Another "moa data" or a watcher is updating them; try again when it is done.');
    }
    sleepSync(20);
  }
  held.add(file);
  try {
    return fn();
  } finally {
    held.delete(file);
    releaseLock(file);
  }
}
