import { readFileSync, existsSync } from 'node:fs';

/** A uint32 shard's tokens; empty when the file is missing. */
export function readShard(shardPath: string): Uint32Array {
  if (!existsSync(shardPath)) return new Uint32Array(0);
  const buf = readFileSync(shardPath);
  return new Uint32Array(buf.buffer, buf.byteOffset, Math.floor(buf.byteLength / 4));
}

/** Where `evenWindows` cuts its windows of `len` tokens out of `total`: evenly spaced, at most `count`. */
export function evenStarts(total: number, len: number, count: number): number[] {
  if (total < len) return [];
  const n = Math.min(count, Math.floor(total / len));
  const stride = n > 1 ? Math.floor((total - len) / (n - 1)) : 0;
  return Array.from({ length: n }, (_, i) => i * stride);
}

/**
 * Evenly spaced windows of `len` tokens over a uint32 shard: the same windows every time, so
 * every expert and routing is scored on exactly the same text.
 */
export function evenWindows(shardPath: string, len: number, count: number): Uint32Array[] {
  const tokens = readShard(shardPath);
  return evenStarts(tokens.length, len, count).map((s) => tokens.slice(s, s + len));
}
