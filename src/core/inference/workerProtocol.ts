import type { MoaConfig } from '../config/schema';
import type { ProductLayout, WorkspaceLayout } from '../paths';
import type { CompleteOptions, Completion } from './service';

/** What the completion worker needs to build its CompletionService (plain data: structured clone). */
export interface WorkerInit {
  layout: WorkspaceLayout;
  product: ProductLayout;
  config: MoaConfig;
}

/** Host → worker. `signal` stays behind: cancellation travels as its own message. */
export type ToWorker =
  | { type: 'complete'; id: number; relPath: string; prefix: string; suffix: string; opts: Omit<CompleteOptions, 'signal'>; aborted: boolean }
  | { type: 'cancel'; id: number }
  | { type: 'python'; id: number; path?: string; error?: string };

/** Worker → host. A failure carries MoaError's message and hint. */
export type FromWorker =
  | { type: 'done'; id: number; completion: Completion }
  | { type: 'failed'; id: number; message: string; hint?: string }
  | { type: 'python'; id: number }
  | { type: 'log'; line: string };
