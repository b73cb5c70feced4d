import { Worker } from 'node:worker_threads';
import { MoaError } from '../util/errors';
import type { CompleteOptions, Completion } from './service';
import type { FromWorker, ToWorker, WorkerInit } from './workerProtocol';

interface Pending {
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
  private drained?: () => void;

  constructor(
    /** dist/completionWorker.js: the worker's own bundle. */
    private readonly workerFile: string,
    private readonly init: WorkerInit,
    private readonly python: () => Promise<string>,
    private readonly onLog?: (line: string) => void,
  ) {}

  private start(): Worker {
    const w = new Worker(this.workerFile, { workerData: this.init });
    w.on('message', (m: FromWorker) => this.onMessage(w, m));
    // A crash (or a failed start) fails what was waiting; the next request starts a new worker.
    const fail = (why: string) => {
      if (this.worker === w) this.worker = undefined;
      for (const p of this.pending.values()) p.reject(new MoaError(`the completion worker stopped: ${why}`));
      this.pending.clear();
      this.drained?.();
    };
    w.on('error', (e) => fail(e.message));
    w.on('exit', (code) => fail(`exit code ${code}`));
    w.unref(); // an idle worker never keeps the process alive; a request in flight does (track())
    return w;
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
    if (!this.pending.size) {
      w.unref();
      this.drained?.();
    }
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
      this.pending.set(id, { resolve: (c) => (settle(), resolve(c)), reject: (e) => (settle(), reject(e)) });
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
    if (this.pending.size) await new Promise<void>((resolve) => (this.drained = resolve));
    this.drained = undefined;
    await w.terminate();
  }
}
