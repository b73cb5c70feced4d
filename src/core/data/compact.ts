import { closeSync, openSync, readSync, statSync } from 'node:fs';
import type { WorkspaceLayout } from '../paths';
import { garbageTokens, readDomainIndex, shardPaths, writeDomainIndex, type DomainIndex } from './fileIndex';
import { withDataLock } from './lock';
import { writeShardPair } from './shardFile';
import { readManifest, type DatasetManifest } from './shards';

/** Rewrites a domain's shards with only the live documents, in their current order. */
export function compactDomain(layout: WorkspaceLayout, index: DomainIndex): DomainIndex {
  const paths = shardPaths(layout, index.domain);
  const entries = Object.entries(index.files).sort((a, b) => a[1].s - b[1].s || a[1].o - b[1].o);
  const readers = paths.map((p) => openSync(p, 'r'));
  const files: DomainIndex['files'] = {};
  let stored: [number, number];
  try {
    stored = writeShardPair(paths, (writers) => {
      for (const [rel, f] of entries) {
        const doc = new Uint32Array(f.n);
        const bytes = new Uint8Array(doc.buffer);
        const got = readSync(readers[f.s]!, bytes, 0, bytes.length, f.o * 4);
        if (got !== bytes.length) throw new Error(`${paths[f.s]}: shorter than its index says (${rel})`);
        files[rel] = { ...f, o: writers[f.s].append(doc) };
      }
    });
  } finally {
    for (const fd of readers) closeSync(fd);
  }
  const compacted: DomainIndex = { ...index, stored, files };
  writeDomainIndex(layout, compacted);
  return compacted;
}

function tokensIn(shard: string): number {
  try {
    return statSync(shard).size / 4;
  } catch {
    return -1; // missing: let the index decide
  }
}

/**
 * The manifest, with every shard compacted first: the trainer and the evaluator read shards
 * whole, so documents of changed or deleted files must be gone before they do.
 */
export function datasetsForTraining(layout: WorkspaceLayout): DatasetManifest | undefined {
  return withDataLock(layout, () => {
    const manifest = readManifest(layout);
    for (const d of manifest?.domains ?? []) {
      // Shards holding exactly the live tokens have no garbage: no need to read the index.
      const [train, val] = shardPaths(layout, d.domain).map(tokensIn);
      if (train === d.trainTokens && val === d.valTokens) continue;
      const index = readDomainIndex(layout, d.domain);
      if (index && garbageTokens(index) > 0) compactDomain(layout, index);
    }
    return manifest;
  });
}
