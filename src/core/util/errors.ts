/** A place in a file, for a front end to open (an editor at the line). */
export interface FileSpot {
  file: string;
  line: number;
}

/**
 * An error a user can act on: it names the file (or thing) and the problem, and may carry a hint
 * and where in the file the problem is.
 */
export class MoaError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
    readonly at?: FileSpot,
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

const ERRNO_HINTS: Record<string, string> = {
  ENOSPC: 'The disk is full: free some space, then run the command again.',
  EDQUOT: 'The disk quota is used up: free some space, then run the command again.',
  EACCES: 'Check the permissions of the file and its folder.',
  EPERM: 'Check the permissions of the file and its folder.',
  EROFS: 'The file system is read-only.',
  EMFILE: 'Too many files are open; close some programs and try again.',
};

/** A Node file-system error (it carries an errno code), as opposed to a bug. */
export function isErrnoError(e: unknown): e is NodeJS.ErrnoException & { code: string } {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && /^E[A-Z0-9]+$/.test((e as NodeJS.ErrnoException).code!);
}

/**
 * A file-system failure as a MoaError naming the file and the errno ("…/events.jsonl: ENOSPC: no
 * space left on device"), with a hint where there is one; anything else unchanged.
 */
export function fileError(file: string, e: unknown): unknown {
  if (!isErrnoError(e) || e instanceof MoaError) return e;
  return new MoaError(`${file}: ${e.message.replace(/, \w+ '[^']*'$/, '')}`, ERRNO_HINTS[e.code]);
}

export function errnoHint(e: unknown): string | undefined {
  return isErrnoError(e) ? ERRNO_HINTS[e.code] : undefined;
}
