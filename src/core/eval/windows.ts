import { readFileSync, existsSync } from 'node:fs';

/**
 * Evenly spaced windows of `len` tokens over a uint32 shard: the same windows every time, so
 * every expert and routing is scored on exactly the same text.
 */
export function evenWindows(shardPath: string, len: number, count: number): Uint32Array[] {
  if (!existsSync(shardPath)) return [];
  const buf = readFileSync(shardPath);
  const tokens = new Uint32Array(buf.buffer, buf.byteOffset, Math.floor(buf.byteLength / 4));
  if (tokens.length < len) return [];
  const n = Math.min(count, Math.floor(tokens.length / len));
  const stride = n > 1 ? Math.floor((tokens.length - len) / (n - 1)) : 0;
  return Array.from({ length: n }, (_, i) => tokens.slice(i * stride, i * stride + len));
}
