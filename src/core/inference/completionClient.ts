import { Worker } from 'node:worker_threads';
import { Pending, receiver } from '../util/channel';
import { MoaError } from '../util/errors';
import type { CompleteOptions, Completion } from './service';
import { parseFromWorker, type FromWorker, type ToWorker, type WorkerInit } from './workerProtocol';

/**
 * CompletionService.complete() run on a worker thread (completionWorker.ts): the extension host's
 * event loop stays free while the model prefills and decodes. The worker starts on the first
 * request (onnxruntime-node loads there, never in the host) and is started again if it dies.
 */
export class CompletionClient {
  private worker?: Worker;
  private readonly pending = new Pending<Completion, Worker>();
  /** Workers being disposed, and what to call once each one's last request has answered. */
  private readonly retiring = new Map<Worker, () => void>();
  /** Streaming requests' `onText`, by request id. */
  private readonly streams = new Map<number, (text: string) => void>();

  constructor(
    /** dist/completionWorker.js: the worker's own bundle. */
    private readonly workerFile: string,
    private readonly init: WorkerInit,
    private readonly python: () => Promise<string>,
    private readonly onLog?: (line: string) => void,
  ) {}

  private start(): Worker {
    const w = new Worker(this.workerFile, { workerData: this.init });
    w.on('message', receiver('completion worker', parseFromWorker, (m) => this.onMessage(w, m), (line) => this.onLog?.(line)));
    // A crash (or a failed start) fails what was waiting; the next request starts a new worker.
    const fail = (why: string) => {
      if (this.worker === w) this.worker = undefined;
      this.pending.rejectAll(w, new MoaError(`the completion worker stopped: ${why}`));
      this.settled(w);
    };
    w.on('error', (e) => fail(e.message));
    w.on('exit', (code) => fail(`exit code ${code}`));
    w.unref(); // an idle worker never keeps the process alive; one with a request in flight does
    return w;
  }

  /** After a request of `w` answered: let the process exit when idle, finish a disposal. */
  private settled(w: Worker): void {
    if (this.pending.has(w)) return;
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
    if (m.type === 'text') return this.streams.get(m.id)?.(m.text);
    if (m.type === 'done') this.pending.resolve(m.id, m.completion);
    else this.pending.reject(m.id, new MoaError(m.message, m.hint));
    this.settled(w);
  }

  complete(relPath: string, prefix: string, opts: CompleteOptions, suffix = ''): Promise<Completion> {
    const w = (this.worker ??= this.start());
    const { id, answer } = this.pending.open(w);
    const { signal, onText, ...rest } = opts;
    const cancel = () => w.postMessage({ type: 'cancel', id } satisfies ToWorker);
    w.ref();
    signal?.addEventListener('abort', cancel, { once: true });
    if (onText) this.streams.set(id, onText);
    w.postMessage({ type: 'complete', id, relPath, prefix, suffix, opts: rest, aborted: signal?.aborted ?? false, stream: onText !== undefined } satisfies ToWorker);
    return answer.finally(() => {
      signal?.removeEventListener('abort', cancel);
      this.streams.delete(id);
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
    if (this.pending.has(w)) await new Promise<void>((drained) => this.retiring.set(w, drained));
    this.retiring.delete(w);
    await w.terminate();
  }
}
