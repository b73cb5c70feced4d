// The completion worker: a CompletionService (and so onnxruntime-node) on its own thread, so that a
// prefill never holds the extension host's event loop (onnxruntime-node's run is synchronous; a
// 0.5B model's 512-token prefill takes about a second: bench/core/RESULTS.md). Bundled on its own
// as dist/completionWorker.js; CompletionClient (completionClient.ts) is the host's side.
import { parentPort, workerData } from 'node:worker_threads';
import { MoaError, errorMessage } from '../util/errors';
import { CompletionService } from './service';
import { Pending, receiver } from '../util/channel';
import { parseToWorker, type FromWorker, type ToWorker, type WorkerInit } from './workerProtocol';

const port = parentPort!;
const init = workerData as WorkerInit;
const send = (m: FromWorker) => port.postMessage(m);
const running = new Map<number, AbortController>();
const pythonAsked = new Pending<string>();

/** The interpreter is the host's to choose (a machine-scoped setting, workspace trust): asked for once, when the export needs it. */
function askPython(): Promise<string> {
  const { id, answer } = pythonAsked.open(undefined);
  send({ type: 'python', id });
  return answer;
}

const service = new CompletionService(init.layout, init.product, init.config, askPython, (line) => send({ type: 'log', line }));

function onMessage(m: ToWorker): void {
  if (m.type === 'cancel') {
    running.get(m.id)?.abort();
  } else if (m.type === 'python') {
    if (m.path !== undefined) pythonAsked.resolve(m.id, m.path);
    else pythonAsked.reject(m.id, new MoaError(m.error ?? 'no Python interpreter'));
  } else {
    const abort = new AbortController();
    if (m.aborted) abort.abort(); // cancelled before it was sent: answer as the in-process service would
    running.set(m.id, abort);
    service
      .complete(m.relPath, m.prefix, { ...m.opts, signal: abort.signal, ...(m.stream ? { onText: (text: string) => send({ type: 'text', id: m.id, text }) } : {}) }, m.suffix)
      .then((completion) => send({ type: 'done', id: m.id, completion }))
      .catch((e: unknown) => send({ type: 'failed', id: m.id, message: errorMessage(e), hint: e instanceof MoaError ? e.hint : undefined }))
      .finally(() => running.delete(m.id));
  }
}

port.on('message', receiver('completion worker', parseToWorker, onMessage, (line) => send({ type: 'log', line })));
