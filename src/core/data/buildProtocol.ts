import { isObject } from '../util/json';
import type { DatasetManifest } from './shards';

/** Parent → builder: the one request a builder process serves. */
export interface BuildRequest {
  type: 'build';
  /** The workspace's root folder. */
  root: string;
  /** MoA Studio's own folder (the built-in tokenizer lives there). */
  productRoot: string;
}

/** Builder → parent. A failure carries MoaError's message and hint. */
export type BuildReply = { type: 'done'; manifest: DatasetManifest } | { type: 'failed'; message: string; hint?: string };

export function parseBuildRequest(m: unknown): BuildRequest | undefined {
  return isObject(m) && m['type'] === 'build' && typeof m['root'] === 'string' && typeof m['productRoot'] === 'string' ? { type: 'build', root: m['root'], productRoot: m['productRoot'] } : undefined;
}

export function parseBuildReply(m: unknown): BuildReply | undefined {
  if (!isObject(m)) return undefined;
  if (m['type'] === 'failed') return typeof m['message'] === 'string' && (m['hint'] === undefined || typeof m['hint'] === 'string') ? (m as BuildReply) : undefined;
  const manifest = m['manifest'];
  return m['type'] === 'done' && isObject(manifest) && manifest['v'] === 1 && Array.isArray(manifest['domains']) ? (m as BuildReply) : undefined;
}
