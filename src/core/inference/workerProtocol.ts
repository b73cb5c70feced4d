import type { MoaConfig } from '../config/schema';
import { isObject } from '../util/json';
import type { ProductLayout, WorkspaceLayout } from '../paths';
import type { CompleteOptions, Completion } from './service';

/** What the completion worker needs to build its CompletionService (plain data: structured clone). */
export interface WorkerInit {
  layout: WorkspaceLayout;
  product: ProductLayout;
  config: MoaConfig;
}

/**
 * Host → worker. Functions stay behind: cancellation travels as its own message, and `stream`
 * asks for the text after each token as `text` messages (what `onText` sees in process).
 */
export type ToWorker =
  | { type: 'complete'; id: number; relPath: string; prefix: string; suffix: string; opts: Omit<CompleteOptions, 'signal' | 'onText'>; aborted: boolean; stream: boolean }
  | { type: 'cancel'; id: number }
  | { type: 'python'; id: number; path?: string; error?: string };

/** Worker → host. A failure carries MoaError's message and hint. */
export type FromWorker =
  | { type: 'done'; id: number; completion: Completion }
  | { type: 'text'; id: number; text: string }
  | { type: 'failed'; id: number; message: string; hint?: string }
  | { type: 'python'; id: number }
  | { type: 'log'; line: string };

const isId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const optStr = (v: unknown) => v === undefined || typeof v === 'string';

/** What the worker accepts from the host: anything else is dropped (and logged), never acted on. */
export function parseToWorker(m: unknown): ToWorker | undefined {
  if (!isObject(m) || !isId(m['id'])) return undefined;
  switch (m['type']) {
    case 'cancel':
      return { type: 'cancel', id: m['id'] };
    case 'python':
      return optStr(m['path']) && optStr(m['error']) ? (m as ToWorker) : undefined;
    case 'complete': {
      const o = m['opts'];
      const ok =
        typeof m['relPath'] === 'string' && typeof m['prefix'] === 'string' && typeof m['suffix'] === 'string' && typeof m['aborted'] === 'boolean' && typeof m['stream'] === 'boolean' &&
        isObject(o) && ['maxNewTokens', 'temperature', 'topP', 'seed', 'promptTokens'].every((k) => typeof o[k] === 'number' && Number.isFinite(o[k])) &&
        (o['stop'] === 'line' || o['stop'] === 'block' || o['stop'] === 'none') && optStr(o['languageId']) &&
        (o['stopStrings'] === undefined || (Array.isArray(o['stopStrings']) && o['stopStrings'].every((x) => typeof x === 'string')));
      return ok ? (m as ToWorker) : undefined;
    }
    default:
      return undefined;
  }
}

/** What the host accepts from the worker. */
export function parseFromWorker(m: unknown): FromWorker | undefined {
  if (!isObject(m)) return undefined;
  if (m['type'] === 'log') return typeof m['line'] === 'string' ? { type: 'log', line: m['line'] } : undefined;
  if (!isId(m['id'])) return undefined;
  switch (m['type']) {
    case 'python':
      return { type: 'python', id: m['id'] };
    case 'failed':
      return typeof m['message'] === 'string' && optStr(m['hint']) ? (m as FromWorker) : undefined;
    case 'text':
      return typeof m['text'] === 'string' ? { type: 'text', id: m['id'], text: m['text'] } : undefined;
    case 'done': {
      const c = m['completion'];
      return isObject(c) && typeof c['text'] === 'string' && isObject(c['route']) && typeof c['tokens'] === 'number' && typeof c['stopReason'] === 'string' ? (m as FromWorker) : undefined;
    }
    default:
      return undefined;
  }
}
