import { Worker } from 'node:worker_threads';
import { MoaError } from '../util/errors';
import type { CompleteOptions, Completion } from './service';
import { parseFromWorker, type FromWorker, type ToWorker, type WorkerInit } from './workerProtocol';

interface Pending {
  worker: Worker;
  resolve: (c: Completion) => void;
  reject: (e: Error) => void;
}

/**
 * CompletionService.complete() run on a worker thread (completionWorker.ts): the extension host's
 * event loop stays free while the model prefills and decodes. The worker starts on the first
 * request (onnxruntime-node loads there, never in the host) and is started again if it dies.
 */
export class CompletionClient {
  private worker?: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  /** Workers being disposed, and what to call once each one's last request has answered. */
  private readonly retiring = new Map<Worker, () => void>();

  constructor(
    /** dist/completionWorker.js: the worker's own bundle. */
    private readonly workerFile: string,
    private readonly init: WorkerInit,
    private readonly python: () => Promise<string>,
    private readonly onLog?: (line: string) => void,
  ) {}

  private start(): Worker {
    const w = new Worker(this.workerFile, { workerData: this.init });
    w.on('message', (raw: unknown) => {
      const m = parseFromWorker(raw);
      if (m) this.onMessage(w, m);
      else this.onLog?.(`completion worker: dropped a malformed message ${JSON.stringify(raw)?.slice(0, 200)}`);
    });
    // A crash (or a failed start) fails what was waiting; the next request starts a new worker.
    const fail = (why: string) => {
      if (this.worker === w) this.worker = undefined;
      for (const [id, p] of this.pending) {
        if (p.worker !== w) continue;
        this.pending.delete(id);
        p.reject(new MoaError(`the completion worker stopped: ${why}`));
      }
      this.settled(w);
    };
    w.on('error', (e) => fail(e.message));
    w.on('exit', (code) => fail(`exit code ${code}`));
    w.unref(); // an idle worker never keeps the process alive; one with a request in flight does
    return w;
  }

  private busy(w: Worker): boolean {
    for (const p of this.pending.values()) if (p.worker === w) return true;
    return false;
  }

  /** After a request of `w` answered: let the process exit when idle, finish a disposal. */
  private settled(w: Worker): void {
    if (this.busy(w)) return;
    w.unref();
    this.retiring.get(w)?.();
  }

  private onMessage(w: Worker, m: FromWorker): void {
    if (m.type === 'log') return this.onLog?.(m.line);
    if (m.type === 'python') {
      this.python().then(
        (path) => w.postMessage({ type: 'python', id: m.id, path } satisfies ToWorker),
        (e: unknown) => w.postMessage({ type: 'python', id: m.id, error: e instanceof Error ? e.message : String(e) } satisfies ToWorker),
      );
      return;
    }
    const p = this.pending.get(m.id);
    this.pending.delete(m.id);
    this.settled(w);
    if (m.type === 'done') p?.resolve(m.completion);
    else p?.reject(new MoaError(m.message, m.hint));
  }

  complete(relPath: string, prefix: string, opts: CompleteOptions, suffix = ''): Promise<Completion> {
    const w = (this.worker ??= this.start());
    const id = ++this.nextId;
    const { signal, ...rest } = opts;
    const cancel = () => w.postMessage({ type: 'cancel', id } satisfies ToWorker);
    return new Promise<Completion>((resolve, reject) => {
      const settle = () => signal?.removeEventListener('abort', cancel);
      this.pending.set(id, { worker: w, resolve: (c) => (settle(), resolve(c)), reject: (e) => (settle(), reject(e)) });
      w.ref();
      signal?.addEventListener('abort', cancel, { once: true });
      w.postMessage({ type: 'complete', id, relPath, prefix, suffix, opts: rest, aborted: signal?.aborted ?? false } satisfies ToWorker);
    });
  }

  /**
   * Stops the worker (and its session) once the requests in flight have answered: the provider
   * drops its client when experts or the config change, often while a completion is running.
   * A later request starts a new worker.
   */
  async dispose(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (!w) return;
    if (this.busy(w)) await new Promise<void>((drained) => this.retiring.set(w, drained));
    this.retiring.delete(w);
    await w.terminate();
  }
}
