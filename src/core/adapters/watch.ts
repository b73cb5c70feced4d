import { watch } from 'chokidar';

export interface Disposable {
  dispose(): void;
}

/**
 * Watches MoA's own folders (experts, datasets, router) and calls back once per burst of changes,
 * so an expert written by the trainer or copied in by hand shows up at once.
 */
export function watchMoaFolders(paths: string[], onChange: () => void, debounceMs = 200): Disposable {
  const watcher = watch(paths, { ignoreInitial: true, depth: 3, awaitWriteFinish: false });
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
