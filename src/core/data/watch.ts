import { relative, sep } from 'node:path';
import { watch } from 'chokidar';
import type { MoaConfig } from '../config/schema';
import type { WorkspaceLayout } from '../paths';
import type { Tokenizer } from '../tokenizer/types';
import { IndexCache, updateDatasets, type UpdateResult } from './incremental';
import { DataLockBusy } from './lock';
import { DEFAULT_EXCLUDES } from './scan';

/** How soon a watcher tries again when another process holds the datasets lock. */
const LOCKED_RETRY_MS = 500;

export interface DatasetWatchOptions {
  /** Loads config and tokenizer; called again after the config file changes. */
  load: () => { config: MoaConfig; tokenizer: Tokenizer };
  onUpdate: (r: UpdateResult, ms: number, paths: number) => void;
  onError: (e: unknown) => void;
  /** Quiet time that ends a burst of changes, and the longest a change waits under constant edits. */
  debounceMs?: number;
  maxWaitMs?: number;
}

export interface DatasetWatcher {
  /** Resolves once the initial scan of the watcher is done, so later changes are seen. */
  ready: Promise<void>;
  /** Resolves when no change is pending or being applied. */
  idle(): Promise<void>;
  dispose(): Promise<void>;
}

/** One watcher update in words: what was re-tokenized, removed, rebuilt and compacted. */
export function describeUpdate(r: UpdateResult): string {
  const what = r.kind === 'rebuilt' ? 'rebuilt everything' : `${r.changed} re-tokenized, ${r.removed} removed`;
  const extra = [r.rebuiltDomains.length && r.kind !== 'rebuilt' ? `rebuilt ${r.rebuiltDomains.join(', ')}` : '', r.compacted.length ? `compacted ${r.compacted.join(', ')}` : ''].filter(Boolean).join('; ');
  const files = r.files ?? [];
  const named = files.slice(0, 5).map((f) => `${f.change === 'removed' ? '-' : '+'}${f.path} (${f.domain})`).join(', ');
  const more = r.changed + r.removed - Math.min(5, files.length);
  const which = named ? `: ${named}${more > 0 ? ` and ${more} more` : ''}` : '';
  const emptied = r.emptied?.length ? `; domain${r.emptied.length > 1 ? 's' : ''} ${r.emptied.join(', ')} now ha${r.emptied.length > 1 ? 've' : 's'} no files` : '';
  return `${what}${extra ? ` (${extra})` : ''}${which}${emptied}`;
}

/**
 * Keeps the datasets current while files change: chokidar reports paths, a burst of them is
 * coalesced, and only those files are re-tokenized (`updateDatasets`).
 */
export function watchDatasets(layout: WorkspaceLayout, opts: DatasetWatchOptions): DatasetWatcher {
  const debounceMs = opts.debounceMs ?? 300;
  const maxWaitMs = opts.maxWaitMs ?? 2000;
  const cache = new IndexCache(layout);
  let loaded: ReturnType<DatasetWatchOptions['load']> | undefined;
  const pending = new Set<string>();
  let configChanged = false;
  let timer: NodeJS.Timeout | undefined;
  let firstPending = 0;
  const waiters: (() => void)[] = [];

  const flush = () => {
    timer = undefined;
    const paths = [...pending];
    pending.clear();
    const t0 = performance.now();
    try {
      if (configChanged || !loaded) {
        loaded = opts.load();
        configChanged = false;
      }
      // Never wait for the lock on the event loop (a child "moa data" may hold it for a whole
      // build): keep the paths and try again shortly.
      const r = updateDatasets(layout, loaded.config, loaded.tokenizer, paths, cache, 0);
      opts.onUpdate(r, performance.now() - t0, paths.length);
    } catch (e) {
      if (e instanceof DataLockBusy) {
        for (const p of paths) pending.add(p);
        timer = setTimeout(flush, LOCKED_RETRY_MS);
        return;
      }
      // A bad config or an unreadable file is reported; the watcher keeps going.
      opts.onError(e);
      loaded = undefined;
    }
    if (pending.size === 0 && !timer) for (const w of waiters.splice(0)) w();
  };
  const schedule = () => {
    const now = Date.now();
    if (!timer) firstPending = now;
    clearTimeout(timer);
    timer = setTimeout(flush, now - firstPending >= maxWaitMs ? 0 : debounceMs);
  };

  const excluded = (abs: string) => {
    const rel = relative(layout.root, abs);
    return rel !== '' && rel.split(sep).some((part) => DEFAULT_EXCLUDES.includes(part));
  };
  const files = watch(layout.root, { ignoreInitial: true, followSymlinks: false, ignored: excluded });
  files.on('all', (event, abs) => {
    if (event === 'addDir') return; // its files arrive as their own events
    pending.add(relative(layout.root, abs).split(sep).join('/'));
    schedule();
  });
  const configWatcher = watch(layout.configFile, { ignoreInitial: true });
  configWatcher.on('all', () => {
    configChanged = true;
    schedule();
  });
  // A watcher error (a folder removed under it, too many watches) must not take the host down.
  files.on('error', opts.onError);
  configWatcher.on('error', opts.onError);
  const ready = Promise.all([new Promise<void>((r) => files.once('ready', () => r())), new Promise<void>((r) => configWatcher.once('ready', () => r()))]).then(() => undefined);
  return {
    ready,
    idle: () => (pending.size === 0 && !timer ? Promise.resolve() : new Promise<void>((r) => waiters.push(r))),
    async dispose() {
      clearTimeout(timer);
      timer = undefined;
      for (const w of waiters.splice(0)) w();
      await Promise.all([files.close(), configWatcher.close()]);
    },
  };
}
