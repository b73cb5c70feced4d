import { createHash } from 'node:crypto';

/** A stable number in [0, 1) from a path, so the train/val split never changes between runs. */
export function pathBucket(relPath: string): number {
  return createHash('sha1').update(relPath).digest().readUInt32BE(0) / 2 ** 32;
}

/**
 * Which of a domain's files are held out: those whose bucket falls under the fraction, and at
 * least a few when the domain has files to spare (one held-out file is not a measurement): one
 * from 2 files, two from 8, three from 12; never half or more of the domain's files.
 */
export function chooseValidation(relPaths: string[], valFraction: number): Set<string> {
  return validationFromBuckets(relPaths.map((p) => [p, pathBucket(p)] as const), valFraction);
}

/** At least this many held-out files for a domain of `n` files (0 with a fraction of 0). */
export function minValidationFiles(n: number): number {
  return n < 2 ? 0 : n < 8 ? 1 : n < 12 ? 2 : 3;
}

/** `chooseValidation` on buckets already known (the dataset index keeps them). */
export function validationFromBuckets(files: Iterable<readonly [string, number]>, valFraction: number): Set<string> {
  if (valFraction <= 0) return new Set();
  const sorted = [...files].sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1));
  if (sorted.length < 2) return new Set();
  const under = sorted.filter(([, b]) => b < valFraction).length;
  const want = Math.min(Math.max(under, minValidationFiles(sorted.length)), Math.ceil(sorted.length / 2) - 1 || 1);
  return new Set(sorted.slice(0, want).map(([p]) => p));
}
