import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { WorkspaceLayout } from '../paths';
import { MoaError } from '../util/errors';
import { pidAlive } from '../util/pid';

const held = new Set<string>();

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Runs `fn` holding the datasets lock: a watcher appending to the shards, a full rebuild and a
 * compaction before training must not interleave. Held for milliseconds to seconds, so waiting
 * is synchronous; a lock whose owner died is taken over.
 */
export function withDataLock<T>(layout: WorkspaceLayout, fn: () => T, waitMs = 60_000): T {
  mkdirSync(layout.dataDir, { recursive: true });
  const file = join(layout.dataDir, '.lock');
  if (held.has(file)) return fn(); // nested: a rebuild that compacts, say
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let owner = NaN;
      try {
        owner = Number(readFileSync(file, 'utf8'));
      } catch {
        continue; // released between our open and read
      }
      // An empty file is a lock being written this instant; only a dead owner is taken over.
      if (Number.isInteger(owner) && owner > 0 && !pidAlive(owner)) {
        rmSync(file, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new MoaError(`${file}: the datasets are locked by process ${owner}`, 'Another "moa data" or a watcher is updating them; try again when it is done.');
      }
      sleepSync(20);
    }
  }
  held.add(file);
  try {
    return fn();
  } finally {
    held.delete(file);
    rmSync(file, { force: true });
  }
}
