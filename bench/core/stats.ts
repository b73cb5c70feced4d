import { percentile } from '../../src/core/util/stats';

/** The q-quantile of a sample, as core computes it; what every bench here reports. */
export const quantile = percentile;
export const median = (xs: number[]): number => percentile(xs, 0.5);
