// GGUF export on a worker thread (bundled as dist/ggufExport.js): converting a base's weights
// takes seconds for a real model, which the editor's host thread must not spend. One request
// in workerData, one reply, then the thread ends.
import { parentPort, workerData } from 'node:worker_threads';
import { readBaseModel } from '../models/base';
import { MoaError, errorMessage } from '../util/errors';
import { exportExpertAsGguf, exportForOllama } from './export';
import type { GgufExportReply, GgufExportRequest } from './exportProtocol';

const req = workerData as GgufExportRequest;
// The host sets the flag to cancel; the writer looks at it between tensors.
const cancel = new Int32Array(req.cancel);
let reply: GgufExportReply;
try {
  const base = readBaseModel(req.baseName, req.baseDir);
  reply = req.format === 'ollama'
    ? { type: 'done', ...exportForOllama(req.expertDir, req.name, base, req.dir, req.type, req.force, () => Atomics.load(cancel, 0) === 1) }
    : { type: 'done', files: [exportExpertAsGguf(req.expertDir, req.name, base, req.dir, req.force)] };
} catch (e) {
  reply = { type: 'failed', message: errorMessage(e), hint: e instanceof MoaError ? e.hint : undefined };
}
parentPort!.postMessage(reply);
