/**
 * The one way messages cross a boundary here (webview ↔ host, host ↔ completion worker, host ↔
 * dataset builder): each side parses what arrives with its protocol's `parse`, acts only on what
 * parses, and reports the rest; requests carry ids and their answers are matched back by `Pending`.
 */

/** A protocol's check of an incoming message: the typed message, or undefined for anything else. */
export type Parse<T> = (raw: unknown) => T | undefined;

/**
 * A listener for raw messages that hands `handle` only what `parse` accepts; anything else is
 * dropped and described to `onInvalid` (for a log), never acted on.
 */
export function receiver<T>(name: string, parse: Parse<T>, handle: (m: T) => void, onInvalid: (line: string) => void): (raw: unknown) => void {
  return (raw) => {
    const m = parse(raw);
    if (m === undefined) onInvalid(`${name}: dropped an invalid message ${JSON.stringify(raw)?.slice(0, 200)}`);
    else handle(m);
  };
}

interface Waiting<T, K> {
  key: K;
  resolve: (value: T) => void;
  reject: (e: Error) => void;
}

/**
 * Requests in flight: each gets an id to send, and its answer (or failure) is matched back by id.
 * `key` groups requests (by the worker that holds them, say) so one side going away fails its own.
 */
export class Pending<T, K = undefined> {
  private next = 0;
  private readonly waiting = new Map<number, Waiting<T, K>>();

  open(key: K): { id: number; answer: Promise<T> } {
    const id = ++this.next;
    const answer = new Promise<T>((resolve, reject) => this.waiting.set(id, { key, resolve, reject }));
    return { id, answer };
  }

  /** The answer to `id`; false when nothing waits for it (answered already, or never asked). */
  resolve(id: number, value: T): boolean {
    const w = this.take(id);
    w?.resolve(value);
    return w !== undefined;
  }

  reject(id: number, e: Error): boolean {
    const w = this.take(id);
    w?.reject(e);
    return w !== undefined;
  }

  /** Fails every request of `key` (its other side is gone). */
  rejectAll(key: K, e: Error): void {
    for (const [id, w] of this.waiting) if (w.key === key) this.reject(id, e);
  }

  has(key: K): boolean {
    for (const w of this.waiting.values()) if (w.key === key) return true;
    return false;
  }

  private take(id: number): Waiting<T, K> | undefined {
    const w = this.waiting.get(id);
    this.waiting.delete(id);
    return w;
  }
}
