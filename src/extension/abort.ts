import * as vscode from 'vscode';

/** An AbortSignal that follows a VS Code cancellation token, for core code that takes signals. */
export function abortOn(token: vscode.CancellationToken): { signal: AbortSignal; dispose: () => void } {
  const abort = new AbortController();
  const sub = token.onCancellationRequested(() => abort.abort());
  return { signal: abort.signal, dispose: () => sub.dispose() };
}

/** `work` under a cancellable notification titled `title`; cancelling it aborts the signal `work` is given. */
export function withCancellableProgress<T>(title: string, work: (signal: AbortSignal, progress: vscode.Progress<{ message?: string }>) => Promise<T>): Thenable<T> {
  return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, async (progress, token) => {
    const abort = abortOn(token);
    try {
      return await work(abort.signal, progress);
    } finally {
      abort.dispose();
    }
  });
}
