/** An error a user can act on: it names the file (or thing) and the problem, and may carry a hint. */
export class MoaError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'MoaError';
  }
}

export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

/** The user cancelled the work; nothing was left half-done. Shown quietly, not as a failure. */
export class Cancelled extends MoaError {
  constructor(what: string, hint?: string) {
    super(`${what} cancelled`, hint);
    this.name = 'Cancelled';
  }
}

export function throwIfCancelled(signal: AbortSignal | undefined, what: string, hint?: string): void {
  if (signal?.aborted) throw new Cancelled(what, hint);
}
