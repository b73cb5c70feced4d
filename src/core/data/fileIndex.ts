import { createHash } from 'node:crypto';
import { appendFileSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { WorkspaceLayout } from '../paths';
import { writeFileAtomic } from '../util/atomic';
import { readJsonObjectOr } from '../util/json';

/** Where one file's document lives in its domain's shard, and what it was made from. */
export interface IndexedFile {
  /** 0: train shard, 1: validation shard. */
  s: 0 | 1;
  /** Offset and length in tokens (BOS and EOS included). */
  o: number;
  n: number;
  /** Size in bytes and SHA-1 of the content the tokens came from. */
  b: number;
  h: string;
  /** The file's split bucket (split.ts `pathBucket`), kept so an update need not rehash every path. */
  k: number;
}

/**
 * A domain's shards and which parts of them are live. Between compactions a shard may hold
 * documents of files since changed or deleted; the index says which ranges are current, and
 * `compact.ts` rewrites the shards from them before anything reads the shards as a whole.
 *
 * On disk: `index.json`, plus `index.log` with one JSON line per update since, so an update
 * writes in proportion to what changed; the log is folded into `index.json` when it grows.
 */
export interface DomainIndex {
  v: 1;
  domain: string;
  tokenizer: string;
  /** Generation of index.json; log lines of another generation are stale and ignored. */
  g: number;
  /** Tokens written to each shard file, live or not. */
  stored: [number, number];
  /** XOR of every file's (path, content hash) digest: a set hash that updates in O(changed). */
  x: string;
  files: Record<string, IndexedFile>;
}

/** One update as the log keeps it: entries set (added or changed) and paths dropped. */
export interface IndexChange {
  set: Record<string, IndexedFile>;
  del: string[];
}

interface LogLine extends IndexChange {
  g: number;
  stored: [number, number];
  x: string;
}

export function domainIndexPath(layout: WorkspaceLayout, domain: string): string {
  return join(layout.dataDir, domain, 'index.json');
}

export function domainIndexLogPath(layout: WorkspaceLayout, domain: string): string {
  return join(layout.dataDir, domain, 'index.log');
}

export function shardPaths(layout: WorkspaceLayout, domain: string): [string, string] {
  return [join(layout.dataDir, domain, 'train.bin'), join(layout.dataDir, domain, 'val.bin')];
}

const isHex64 = (x: unknown) => typeof x === 'string' && /^[0-9a-f]{64}$/.test(x);

/** The index, or undefined when it is missing or not one we wrote (a full rebuild then follows). */
export function readDomainIndex(layout: WorkspaceLayout, domain: string): DomainIndex | undefined {
  const raw = readJsonObjectOr(domainIndexPath(layout, domain)) as Partial<DomainIndex> | undefined;
  if (!raw || raw.v !== 1 || raw.domain !== domain || !Number.isInteger(raw.g) || !Array.isArray(raw.stored) || !isHex64(raw.x)) return undefined;
  if (typeof raw.files !== 'object' || raw.files === null) return undefined;
  const index = raw as DomainIndex;
  let log = '';
  try {
    log = readFileSync(domainIndexLogPath(layout, domain), 'utf8');
  } catch {
    return index;
  }
  for (const line of log.split('\n')) {
    let rec: Partial<LogLine>;
    try {
      rec = JSON.parse(line) as Partial<LogLine>;
    } catch {
      continue; // a torn last line: that update's appended tokens are beyond `stored` and get cut
    }
    if (rec.g !== index.g || !Array.isArray(rec.stored) || !isHex64(rec.x) || typeof rec.set !== 'object' || !Array.isArray(rec.del)) continue;
    for (const rel of rec.del) delete index.files[rel];
    Object.assign(index.files, rec.set);
    index.stored = rec.stored;
    index.x = rec.x!;
  }
  return index;
}

/** Writes the whole index as a new generation and drops the log. */
export function writeDomainIndex(layout: WorkspaceLayout, index: DomainIndex): void {
  index.g += 1;
  writeFileAtomic(domainIndexPath(layout, index.domain), JSON.stringify(index));
  rmSync(domainIndexLogPath(layout, index.domain), { force: true });
}

/** Records one update (already applied to `index`); folds the log into index.json when it has grown. */
export function recordIndexChange(layout: WorkspaceLayout, index: DomainIndex, change: IndexChange): void {
  const logPath = domainIndexLogPath(layout, index.domain);
  const line: LogLine = { g: index.g, stored: index.stored, x: index.x, ...change };
  // One write of one line: a crash leaves the log without it or with a torn line, both skipped.
  appendFileSync(logPath, JSON.stringify(line) + '\n');
  const logSize = statSync(logPath).size;
  if (logSize > Math.max(256 * 1024, statSync(domainIndexPath(layout, index.domain)).size / 4)) writeDomainIndex(layout, index);
}

export interface IndexTotals {
  files: number;
  bytes: number;
  trainFiles: number;
  valFiles: number;
  trainTokens: number;
  valTokens: number;
}

/** Just the totals of something that carries them (a manifest's domain stats, say), as a new object. */
export function totalsOf(t: IndexTotals): IndexTotals {
  return { files: t.files, bytes: t.bytes, trainFiles: t.trainFiles, valFiles: t.valFiles, trainTokens: t.trainTokens, valTokens: t.valTokens };
}

/** Adds one indexed file to the totals (sign 1) or takes it out (sign -1). */
export function addFileTotals(t: IndexTotals, f: IndexedFile, sign: 1 | -1 = 1): void {
  t.files += sign;
  t.bytes += sign * f.b;
  if (f.s === 0) {
    t.trainFiles += sign;
    t.trainTokens += sign * f.n;
  } else {
    t.valFiles += sign;
    t.valTokens += sign * f.n;
  }
}

export function indexTotals(index: DomainIndex): IndexTotals {
  const t: IndexTotals = { files: 0, bytes: 0, trainFiles: 0, valFiles: 0, trainTokens: 0, valTokens: 0 };
  for (const rel in index.files) addFileTotals(t, index.files[rel]!);
  return t;
}

/** Tokens in the shards that no live file owns: what a compaction would drop. */
export function garbageTokens(index: DomainIndex, t: IndexTotals = indexTotals(index)): number {
  return index.stored[0] - t.trainTokens + (index.stored[1] - t.valTokens);
}

/** The digest a file adds to its domain's set hash. */
function fileDigest(rel: string, hash: string): Buffer {
  return createHash('sha256').update(rel).update('\0').update(hash).digest();
}

/** XORs a file's digest into (or, the same operation, out of) a set hash. */
export function toggleFile(x: Buffer, rel: string, hash: string): void {
  const d = fileDigest(rel, hash);
  for (let i = 0; i < 32; i++) x[i] = x[i]! ^ d[i]!;
}

export const EMPTY_SET_HASH = '0'.repeat(64);

/**
 * The inputs' fingerprint: the tokenizer and the set of (path, content hash). It depends only on
 * what is indexed, so a full rebuild and any sequence of updates that reach the same files give
 * the same fingerprint.
 */
export function indexFingerprint(index: DomainIndex): string {
  return createHash('sha256').update(index.tokenizer).update('\0').update(index.x).digest('hex');
}

export function contentHash(content: Uint8Array): string {
  return createHash('sha1').update(content).digest('hex');
}
