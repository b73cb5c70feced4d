import { Worker } from 'node:worker_threads';
import { receiver } from '../util/channel';
import { Cancelled, MoaError } from '../util/errors';
import type { GgmlType } from './write';

/** What the GGUF export worker (exportWorker.ts) is asked to write. */
export interface GgufExportRequest {
  format: 'gguf' | 'ollama';
  expertDir: string;
  name: string;
  baseName: string;
  baseDir: string;
  dir: string;
  type: GgmlType;
  force: boolean;
  /** One Int32 the host sets to 1 to cancel (shared memory: the worker never waits for a message). */
  cancel: SharedArrayBuffer;
}

export type GgufExportReply = { type: 'done'; files: string[]; create?: string } | { type: 'failed'; message: string; hint?: string };

export function parseGgufExportReply(m: unknown): GgufExportReply | undefined {
  if (typeof m !== 'object' || m === null) return undefined;
  const r = m as Record<string, unknown>;
  if (r['type'] === 'done') return Array.isArray(r['files']) && r['files'].every((f) => typeof f === 'string') && (r['create'] === undefined || typeof r['create'] === 'string') ? (r as GgufExportReply) : undefined;
  return r['type'] === 'failed' && typeof r['message'] === 'string' ? (r as GgufExportReply) : undefined;
}

/**
 * Runs one export on the worker `workerFile` (dist/ggufExport.js), off the caller's thread. An
 * abort ends the file being written (its temporary file removed) and rejects with Cancelled;
 * files finished before it stay.
 */
export function exportGgufOffThread(workerFile: string, req: Omit<GgufExportRequest, 'cancel'>, signal?: AbortSignal): Promise<{ files: string[]; create?: string }> {
  return new Promise((resolve, reject) => {
    const cancel = new SharedArrayBuffer(4);
    const w = new Worker(workerFile, { workerData: { ...req, cancel } satisfies GgufExportRequest });
    const onAbort = () => Atomics.store(new Int32Array(cancel), 0, 1);
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    let answered = false;
    const answer = (m: GgufExportReply) => {
      answered = true;
      signal?.removeEventListener('abort', onAbort);
      if (m.type === 'done') resolve({ files: m.files, create: m.create });
      else if (signal?.aborted) reject(new Cancelled('GGUF export', 'Files written before the cancel are kept.'));
      else reject(new MoaError(m.message, m.hint));
    };
    w.on('message', receiver('GGUF export', parseGgufExportReply, answer, (line) => reject(new MoaError(line))));
    w.on('error', (e) => reject(new MoaError(`GGUF export stopped: ${e.message}`)));
    w.on('exit', (code) => answered || reject(new MoaError(`GGUF export stopped (exit ${code}) without an answer`)));
  });
}
