import { sep } from 'node:path';
import { watch } from 'chokidar';

export interface Disposable {
  dispose(): void;
}

/**
 * Watches MoA's own folders (experts, datasets, router) and calls back once per burst of changes,
 * so an expert written by the trainer or copied in by hand shows up at once.
 */
export function watchMoaFolders(moaDir: string, onChange: () => void, debounceMs = 200): Disposable {
  // Run logs and caches change on every training step; only config, experts, router and the
  // dataset manifest change what the views show.
  const noisy = (p: string) => {
    const rel = p.slice(moaDir.length + 1).split(sep).join('/');
    return rel.startsWith('runs') || (rel.startsWith('cache') && rel !== 'cache' && rel !== 'cache/data' && rel !== 'cache/data/manifest.json');
  };
  const watcher = watch(moaDir, { ignoreInitial: true, depth: 3, ignored: noisy });
  let timer: NodeJS.Timeout | undefined;
  const fire = () => {
    clearTimeout(timer);
    timer = setTimeout(onChange, debounceMs);
  };
  watcher.on('all', fire);
  // A watcher error (a folder removed under it, too many watches) must not take the host down.
  watcher.on('error', () => undefined);
  return {
    dispose() {
      clearTimeout(timer);
      void watcher.close();
    },
  };
}
