import type * as vscode from 'vscode';

/** An AbortSignal that follows a VS Code cancellation token, for core code that takes signals. */
export function abortOn(token: vscode.CancellationToken): { signal: AbortSignal; dispose: () => void } {
  const abort = new AbortController();
  const sub = token.onCancellationRequested(() => abort.abort());
  return { signal: abort.signal, dispose: () => sub.dispose() };
}
