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
  return validationFromBuckets(relPaths.map((p) => [p, pathBucket(p)] as const), valFraction);
}

/** `chooseValidation` on buckets already known (the dataset index keeps them). */
export function validationFromBuckets(files: Iterable<readonly [string, number]>, valFraction: number): Set<string> {
  const all = [...files];
  if (valFraction <= 0 || all.length < 2) return new Set();
  const under = all.filter(([, b]) => b < valFraction);
  const byBucket = (a: readonly [string, number], b: readonly [string, number]) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1);
  if (under.length === 0) return new Set([all.reduce((lo, x) => (byBucket(x, lo) < 0 ? x : lo))[0]]);
  if (under.length === all.length) {
    const highest = under.reduce((hi, x) => (byBucket(x, hi) > 0 ? x : hi));
    return new Set(under.filter((x) => x !== highest).map(([p]) => p));
  }
  return new Set(under.map(([p]) => p));
}
