import { mkdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import picomatch from 'picomatch';
import { join } from 'node:path';
import type { MoaConfig } from '../config/schema';
import { compileDomains } from '../domains/classify';
import type { Tokenizer } from '../tokenizer/types';
import type { WorkspaceLayout } from '../paths';
import { MoaError } from '../util/errors';
import { removeStaleTemps, writeJsonAtomic } from '../util/atomic';
import { isObject, readJsonObjectOr } from '../util/json';
import { getOrSet } from '../util/maps';
import { SAFE_NAME } from '../names';
import { contentHash, EMPTY_SET_HASH, indexFingerprint, toggleFile, indexTotals, shardPaths, writeDomainIndex, type DomainIndex, type IndexTotals } from './fileIndex';
import { withDataLock } from './lock';
import { readDocument, realPathOf } from './notebooks';
import { scanOptionsFor, scanWorkspace, type SkipReason } from './scan';
import { encodeDocument, writeShardPair } from './shardFile';
import { chooseValidation, pathBucket } from './split';

export interface DomainStats extends IndexTotals {
  domain: string;
  fingerprint: string;
  trainPath: string;
  valPath: string;
}

export interface DatasetManifest {
  v: 1;
  tokenizer: string;
  created: string;
  domains: DomainStats[];
  /** What the last full scan skipped and left unassigned (updates from a watcher do not recount). */
  skipped: Partial<Record<SkipReason, number>>;
  unassigned: number;
  /** The files the scan skipped for what they are (binary, too large, a link, unreadable), by name; at most LISTED_FILES. */
  skippedFiles?: { path: string; reason: SkipReason }[];
  /** Files that matched no domain, by name; at most LISTED_FILES. */
  unassignedFiles?: string[];
  /** What the last full build found wrong with the config (an include glob that matches no file). */
  warnings?: string[];
  /** The config and tokenizer the shards were built for; an update under another key rebuilds. */
  key?: string;
  updated?: string;
}

/** How many skipped or unassigned files a manifest names (the counts are always complete). */
export const LISTED_FILES = 500;

/**
 * Files the datasets leave out that a user did not choose to leave out (gitignored and excluded
 * folders are theirs): skipped for what they are, or in no domain. The manifest names at most
 * LISTED_FILES of them; this is the full count.
 */
export function leftOutCount(m: DatasetManifest): number {
  const skipped = Object.entries(m.skipped).filter(([k]) => k !== 'gitignored' && k !== 'excluded').reduce((a, [, v]) => a + (v ?? 0), 0);
  return m.unassigned + skipped;
}

export function manifestPath(layout: WorkspaceLayout): string {
  return join(layout.dataDir, 'manifest.json');
}

/**
 * The manifest, with every path in it derived from the layout, never read from the file: a
 * manifest is workspace content, and a shard path in it could name anything on the machine.
 * Entries with an unusable domain name are dropped.
 */
export function readManifest(layout: WorkspaceLayout): DatasetManifest | undefined {
  const m = readJsonObjectOr(manifestPath(layout)) as DatasetManifest | undefined;
  if (!m || m.v !== 1 || !Array.isArray(m.domains)) return undefined;
  const domains = m.domains.filter((d) => isObject(d) && typeof d.domain === 'string' && SAFE_NAME.test(d.domain));
  return {
    ...m,
    domains: domains.map((d) => {
      const [trainPath, valPath] = shardPaths(layout, d.domain);
      return { ...d, trainPath, valPath };
    }),
  };
}

/** What the shards depend on besides the files: domains, split, size cap, tokenizer. */
export function datasetKey(config: MoaConfig, tokenizer: Tokenizer): string {
  const { maxFileBytes, valFraction } = config.data;
  return createHash('sha256').update(JSON.stringify({ domains: config.domains, maxFileBytes, valFraction, tokenizer: tokenizer.id })).digest('hex').slice(0, 16);
}

/** Stats and meta.json for a domain, from its index: the same whether built whole or updated. */
export function publishDomain(layout: WorkspaceLayout, index: DomainIndex, t: IndexTotals = indexTotals(index)): DomainStats {
  const [trainPath, valPath] = shardPaths(layout, index.domain);
  const s: DomainStats = { domain: index.domain, ...t, fingerprint: indexFingerprint(index), trainPath, valPath };
  writeJsonAtomic(join(layout.dataDir, index.domain, 'meta.json'), {
    v: 1,
    domain: index.domain,
    dtype: 'uint32',
    tokenizer: index.tokenizer,
    files: s.files,
    bytes: s.bytes,
    train_tokens: s.trainTokens,
    val_tokens: s.valTokens,
    fingerprint: s.fingerprint,
  });
  return s;
}

export interface BuildOptions {
  onFile?: (relPath: string, domain: string) => void;
}

/** Tokenizes one domain's files into fresh shards and writes its index. */
export function buildDomain(
  layout: WorkspaceLayout,
  domain: string,
  /** Workspace-relative paths, forward slashes. */
  files: string[],
  valFraction: number,
  tokenizer: Tokenizer,
  opts: BuildOptions = {},
): DomainIndex {
  mkdirSync(join(layout.dataDir, domain), { recursive: true });
  removeStaleTemps(join(layout.dataDir, domain));
  const val = chooseValidation(files, valFraction);
  const index: DomainIndex = { v: 1, domain, tokenizer: tokenizer.id, g: 0, stored: [0, 0], x: EMPTY_SET_HASH, files: {} };
  const x = Buffer.alloc(32);
  index.stored = writeShardPair(shardPaths(layout, domain), (writers) => {
    for (const rel of files) {
      const content = readDocument(join(layout.root, realPathOf(rel)), rel);
      if (!content) throw new MoaError(`${join(layout.root, rel)}: disappeared while the datasets were built`, 'Run "moa data" again.');
      const doc = encodeDocument(tokenizer, content);
      const s = val.has(rel) ? 1 : 0;
      const o = writers[s].append(doc);
      const h = contentHash(content);
      index.files[rel] = { s, o, n: doc.length, b: content.length, h, k: pathBucket(rel) };
      toggleFile(x, rel, h);
      opts.onFile?.(rel, domain);
    }
  });
  index.x = x.toString('hex');
  writeDomainIndex(layout, index);
  return index;
}

/**
 * Drops byte-identical copies before any split (the first path, in domain then path order, is
 * kept; the others are skipped as `duplicate`), so one file can never be trained on and held out
 * at once; and finds near-identical pairs (equal but for whitespace) that straddle a split.
 */
function dedupe(
  root: string,
  domains: readonly (readonly [string, string[]])[],
  valFraction: number,
  onSkip: (path: string, reason: SkipReason) => void,
): { kept: Map<string, string[]>; nearDuplicates: [string, string][] } {
  const exact = new Map<string, string>();
  const loose = new Map<string, { rel: string; val: boolean }>();
  const kept = new Map<string, string[]>();
  const nearDuplicates: [string, string][] = [];
  for (const [domain, files] of domains) {
    const mine: string[] = [];
    const normalized = new Map<string, string>();
    for (const rel of files) {
      const content = readDocument(join(root, realPathOf(rel)), rel);
      if (!content) {
        onSkip(rel, 'unreadable');
        continue;
      }
      const h = contentHash(content);
      if (exact.has(h)) {
        onSkip(rel, 'duplicate');
        continue;
      }
      exact.set(h, rel);
      mine.push(rel);
      normalized.set(rel, createHash('sha1').update(content.toString('utf8').replace(/\s+/g, ' ').trim()).digest('hex'));
    }
    const val = chooseValidation(mine, valFraction);
    for (const rel of mine) {
      const norm = normalized.get(rel)!;
      const other = loose.get(norm);
      if (other && other.val !== val.has(rel)) nearDuplicates.push([other.rel, rel]);
      else if (!other) loose.set(norm, { rel, val: val.has(rel) });
    }
    kept.set(domain, mine);
  }
  return { kept, nearDuplicates };
}

/**
 * Tokenizes every domain's files into train/val shards (each file as BOS, tokens, EOS) with stats
 * and a fingerprint of the inputs, so training can tell which experts are stale.
 */
export function buildDatasets(layout: WorkspaceLayout, config: MoaConfig, tokenizer: Tokenizer, opts: BuildOptions = {}): DatasetManifest {
  if (config.domains.length === 0) throw new MoaError(`${layout.configFile}: no domains configured`, 'Add a domain or run "moa init --force".');
  return withDataLock(layout, () => {
    const matcher = compileDomains(config.domains);
    const skipped: Partial<Record<SkipReason, number>> = {};
    // Each include glob on its own: one that matches no file at all is most likely a typo.
    const globs = config.domains.flatMap((d, i) => d.include.map((g, j) => ({ where: `domains[${i}] (${d.name}) include[${j}] "${g}"`, match: picomatch(g, { dot: true }), hit: false })));
    const skippedFiles: { path: string; reason: SkipReason }[] = [];
    const unassignedFiles: string[] = [];
    const byDomain = new Map<string, string[]>();
    let unassigned = 0;
    // Only paths are held for the whole workspace; contents are read one file at a time.
    const onSkip = (path: string, reason: SkipReason) => {
      skipped[reason] = (skipped[reason] ?? 0) + 1;
      // Ignored and excluded folders are the user's choice; what we decided on our own is named.
      if (reason !== 'gitignored' && reason !== 'excluded' && skippedFiles.length < LISTED_FILES) skippedFiles.push({ path, reason });
    };
    for (const f of scanWorkspace(layout.root, scanOptionsFor(layout.root, config.data.maxFileBytes, onSkip))) {
      for (const g of globs) if (!g.hit && g.match(f.relPath)) g.hit = true;
      const domain = matcher.domainOf(f.relPath);
      if (!domain) {
        unassigned++;
        if (unassignedFiles.length < LISTED_FILES) unassignedFiles.push(f.relPath);
        continue;
      }
      getOrSet(byDomain, domain, () => []).push(f.relPath);
    }
    const { kept, nearDuplicates } = dedupe(layout.root, config.domains.map((d) => [d.name, byDomain.get(d.name) ?? []] as const), config.data.valFraction, onSkip);
    byDomain.clear();
    const stats = config.domains.map((d) => {
      const files = kept.get(d.name) ?? [];
      kept.delete(d.name); // let the path list go once its domain is written
      return publishDomain(layout, buildDomain(layout, d.name, files, config.data.valFraction, tokenizer, opts));
    });
    const manifest: DatasetManifest = {
      v: 1,
      tokenizer: tokenizer.id,
      created: new Date().toISOString(),
      domains: stats,
      skipped,
      unassigned,
      skippedFiles,
      unassignedFiles,
      warnings: [
        ...globs.filter((g) => !g.hit).map((g) => `${layout.configFile}: ${g.where} matches no file in the workspace`),
        ...(nearDuplicates.length ? [`${nearDuplicates.length} pair${nearDuplicates.length > 1 ? 's' : ''} of near-identical files (equal but for whitespace) sit on both sides of a train/validation split, so held-out loss flatters them: ${nearDuplicates.slice(0, 3).map(([a, b]) => `${a} ~ ${b}`).join(', ')}${nearDuplicates.length > 3 ? ', …' : ''}`] : []),
      ],
      key: datasetKey(config, tokenizer),
    };
    writeJsonAtomic(manifestPath(layout), manifest);
    return manifest;
  });
}
