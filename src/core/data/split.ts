import { createHash } from 'node:crypto';

/** A stable number in [0, 1) from a path, so the train/val split never changes between runs. */
export function pathBucket(relPath: string): number {
  return createHash('sha1').update(relPath).digest().readUInt32BE(0) / 2 ** 32;
}

/**
 * Which of a domain's files are held out: those whose bucket falls under the fraction; with at
 * least two files and none held out, the lowest bucket, so every domain with data can be evaluated.
 */
export function chooseValidation(relPaths: string[], valFraction: number): Set<string> {
  if (valFraction <= 0 || relPaths.length < 2) return new Set();
  const ranked = relPaths.map((p) => ({ p, b: pathBucket(p) })).sort((a, b) => a.b - b.b);
  const val = ranked.filter((x) => x.b < valFraction).map((x) => x.p);
  if (val.length === 0) val.push(ranked[0]!.p);
  if (val.length === relPaths.length) val.pop();
  return new Set(val);
}
