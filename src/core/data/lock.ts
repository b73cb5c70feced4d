import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { WorkspaceLayout } from '../paths';
import { MoaError } from '../util/errors';
import { withLock } from '../util/pidLock';

const held = new Set<string>();

/** The datasets stayed locked by another process for the whole wait. */
export class DataLockBusy extends MoaError {}

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
  return withLock(
    file,
    () => {
      held.add(file);
      try {
        return fn();
      } finally {
        held.delete(file);
      }
    },
    waitMs,
    (holder) => new DataLockBusy(`${file}: the datasets are locked by process ${holder.pid}`, 'Another "moa data" or a watcher is updating them; try again when it is done.'),
  );
}
