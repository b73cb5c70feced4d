import type { TrainerEvent } from './events';

/** What the trainer's hello says about the machine, in the words the tree and the dashboard show. */

const several = (hello: TrainerEvent & { type: 'hello' }) => ((hello.gpu_count ?? 0) > 1 ? `${hello.gpu_count} × ` : '');

/** The tree's short form: cpu, cuda, or "4 × cuda" when the machine has several GPUs. */
export function deviceKind(hello: TrainerEvent & { type: 'hello' }): string {
  return hello.gpu ? `${several(hello)}cuda` : 'cpu';
}

/**
 * The device in full: "2 × NVIDIA H200 (139 GB)", or "cpu (24 GB RAM)" when the caller knows the
 * machine's memory (the trainer runs where the extension does; its hello reports GPU memory only).
 */
export function deviceLabel(hello: TrainerEvent & { type: 'hello' }, ramBytes?: number): string {
  if (hello.gpu) return `${several(hello)}${hello.gpu}${hello.gpu_memory_gb ? ` (${hello.gpu_memory_gb.toFixed(0)} GB)` : ''}`;
  return ramBytes ? `${hello.device} (${(ramBytes / 2 ** 30).toFixed(0)} GB RAM)` : hello.device;
}
