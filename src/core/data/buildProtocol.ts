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

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function parseBuildRequest(m: unknown): BuildRequest | undefined {
  return isObj(m) && m['type'] === 'build' && typeof m['root'] === 'string' && typeof m['productRoot'] === 'string' ? { type: 'build', root: m['root'], productRoot: m['productRoot'] } : undefined;
}

export function parseBuildReply(m: unknown): BuildReply | undefined {
  if (!isObj(m)) return undefined;
  if (m['type'] === 'failed') return typeof m['message'] === 'string' && (m['hint'] === undefined || typeof m['hint'] === 'string') ? (m as BuildReply) : undefined;
  const manifest = m['manifest'];
  return m['type'] === 'done' && isObj(manifest) && manifest['v'] === 1 && Array.isArray(manifest['domains']) ? (m as BuildReply) : undefined;
}
