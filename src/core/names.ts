/**
 * Domain and expert names: each one names a folder (.moa/experts/<name>, the dataset shards), so
 * one rule for both, and nothing that could climb out of a folder or differ only in case.
 */
export const SAFE_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
