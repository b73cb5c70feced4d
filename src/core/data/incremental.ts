import { closeSync, fstatSync, ftruncateSync, openSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { MoaConfig } from '../config/schema';
import { compileDomains } from '../domains/classify';
import type { WorkspaceLayout } from '../paths';
import type { Tokenizer } from '../tokenizer/types';
import { writeJsonAtomic } from '../util/atomic';
import { getOrSet } from '../util/maps';
import { compactDomain } from './compact';
import {
  addFileTotals, contentHash, domainIndexLogPath, domainIndexPath, garbageTokens, readDomainIndex, recordIndexChange, shardPaths, toggleFile, totalsOf,
  type DomainIndex, type IndexChange, type IndexTotals,
} from './fileIndex';
import { withDataLock } from './lock';
import { checkPath, GitignoreCache, scanOptionsFor } from './scan';
import { isNotebook, readDocument, readNotebookParts, realPathOf } from './notebooks';
import { encodeDocument, u32Bytes } from './shardFile';
import { buildDatasets, buildDomain, datasetKey, manifestPath, publishDomain, readManifest, type DatasetManifest } from './shards';
import { pathBucket, validationFromBuckets } from './split';

export interface UpdateResult {
  /** `rebuilt`: everything was built again (first build, config or .gitignore changed). */
  kind: 'updated' | 'rebuilt' | 'unchanged';
  manifest: DatasetManifest;
  /** Files re-tokenized and files dropped, over all domains. */
  changed: number;
  removed: number;
  /** Domains built again whole because a file moved between train and validation. */
  rebuiltDomains: string[];
  compacted: string[];
  /** The files this update touched, by name (at most 100), and which domain each was in. */
  files?: { path: string; domain: string; change: 'tokenized' | 'removed' }[];
  /** Domains that had files before this update and have none now. */
  emptied?: string[];
}

/** Indexes kept between updates by a long-lived watcher, so an update does not re-read them. */
export class IndexCache {
  private readonly entries = new Map<string, { index: DomainIndex; stamp: string }>();
  readonly ignores: GitignoreCache;

  constructor(readonly layout: WorkspaceLayout) {
    this.ignores = new GitignoreCache(layout.root);
  }

  /** What the index files look like on disk now; undefined when there is no index. */
  private stamp(domain: string): string | undefined {
    const of = (p: string) => {
      try {
        const st = statSync(p);
        return `${st.mtimeMs}:${st.size}`;
      } catch {
        return undefined;
      }
    };
    const base = of(domainIndexPath(this.layout, domain));
    return base && `${base}|${of(domainIndexLogPath(this.layout, domain)) ?? '-'}`;
  }

  get(domain: string): DomainIndex | undefined {
    const stamp = this.stamp(domain);
    if (!stamp) return undefined;
    const hit = this.entries.get(domain);
    // Another process (a compaction before training) may have rewritten it.
    if (hit && hit.stamp === stamp) return hit.index;
    const index = readDomainIndex(this.layout, domain);
    if (index) this.entries.set(domain, { index, stamp });
    return index;
  }

  forget(domain: string): void {
    this.entries.delete(domain);
  }

  /** Call after writing `index`, so the next `get` trusts the copy in memory. */
  remember(index: DomainIndex): void {
    const stamp = this.stamp(index.domain);
    if (stamp) this.entries.set(index.domain, { index, stamp });
  }
}

/** Compact when dead documents outweigh live ones: a rewrite then costs at most twice the data. */
function needsCompaction(index: DomainIndex, t: IndexTotals): boolean {
  return garbageTokens(index, t) > Math.max(65_536, t.trainTokens + t.valTokens);
}

/** Appends documents to a shard whose index says it holds `stored` tokens; false if it does not. */
function appendDocs(path: string, stored: number, docs: Uint32Array[]): boolean {
  const fd = openSync(path, 'r+');
  try {
    const size = fstatSync(fd).size;
    if (size < stored * 4) return false;
    // A crash between an append and its index write leaves a tail that no entry owns.
    if (size > stored * 4) ftruncateSync(fd, stored * 4);
    let pos = stored * 4;
    for (const d of docs) pos += writeSync(fd, u32Bytes(d), 0, d.byteLength, pos);
    return true;
  } finally {
    closeSync(fd);
  }
}

interface Pending {
  rel: string;
  content: Buffer;
  hash: string;
}

/**
 * Applies one domain's changes by appending the new documents and logging the index change, and
 * returns the new totals; undefined, with nothing changed, when that cannot be done: a held-out
 * choice moved (small domains hold out a file chosen among all of them) or the shards are not
 * what the index says. The caller then builds the domain again whole.
 */
function appendInPlace(
  layout: WorkspaceLayout,
  tokenizer: Tokenizer,
  valFraction: number,
  index: DomainIndex,
  gone: Set<string>,
  fresh: Pending[],
  totals: IndexTotals,
): IndexTotals | undefined {
  const buckets: [string, number][] = [];
  for (const rel in index.files) if (!gone.has(rel)) buckets.push([rel, index.files[rel]!.k]);
  for (const p of fresh) buckets.push([p.rel, pathBucket(p.rel)]);
  const val = validationFromBuckets(buckets, valFraction);
  for (const rel in index.files) if (!gone.has(rel) && (index.files[rel]!.s === 1) !== val.has(rel)) return undefined;

  const docs: [Uint32Array[], Uint32Array[]] = [[], []];
  const stored: [number, number] = [...index.stored];
  const x = Buffer.from(index.x, 'hex');
  const set: IndexChange['set'] = {};
  for (const p of fresh) {
    const doc = encodeDocument(tokenizer, p.content);
    const s = val.has(p.rel) ? 1 : 0;
    set[p.rel] = { s, o: stored[s], n: doc.length, b: p.content.length, h: p.hash, k: pathBucket(p.rel) };
    stored[s] += doc.length;
    docs[s].push(doc);
  }
  const [trainPath, valPath] = shardPaths(layout, index.domain);
  if (!appendDocs(trainPath, index.stored[0], docs[0]) || !appendDocs(valPath, index.stored[1], docs[1])) return undefined;
  for (const rel of gone) {
    const f = index.files[rel]!;
    toggleFile(x, rel, f.h);
    addFileTotals(totals, f, -1);
    delete index.files[rel];
  }
  for (const [rel, f] of Object.entries(set)) {
    index.files[rel] = f;
    toggleFile(x, rel, f.h);
    addFileTotals(totals, f, 1);
  }
  index.stored = stored;
  index.x = x.toString('hex');
  recordIndexChange(layout, index, { set, del: [...gone] });
  return totals;
}

/**
 * Brings the datasets up to date with the given workspace-relative paths (files or folders that
 * were added, changed, renamed or deleted), re-tokenizing only those files. Falls back to a full
 * build when there is nothing to update or the config, tokenizer or a .gitignore changed.
 */
export function updateDatasets(
  layout: WorkspaceLayout,
  config: MoaConfig,
  tokenizer: Tokenizer,
  paths: Iterable<string>,
  cache: IndexCache = new IndexCache(layout),
  /** How long to wait for the datasets lock (lock.ts): 0 for a caller that must not block. */
  waitMs?: number,
): UpdateResult {
  return withDataLock(layout, () => {
    const rels = [...new Set(paths)];
    const before = readManifest(layout);
    // Counted now: an update replaces this manifest's domains in place.
    const filesBefore = new Map(before?.domains.map((d) => [d.domain, d.files]));
    const emptiedSince = (after: DatasetManifest) => after.domains.filter((d) => d.files === 0 && (filesBefore.get(d.domain) ?? 0) > 0).map((d) => d.domain);
    const rebuild = (): UpdateResult => {
      cache.ignores.clear();
      const manifest = buildDatasets(layout, config, tokenizer);
      return { kind: 'rebuilt', manifest, changed: 0, removed: 0, rebuiltDomains: manifest.domains.map((d) => d.domain), compacted: [], emptied: emptiedSince(manifest) };
    };
    const manifest = before;
    if (!manifest || manifest.key !== datasetKey(config, tokenizer)) return rebuild();
    if (rels.some((r) => r === '.gitignore' || r.endsWith('/.gitignore') || r === '.gitattributes')) return rebuild();
    const indexes = new Map<string, DomainIndex>();
    for (const d of config.domains) {
      const index = cache.get(d.name);
      if (!index) return rebuild();
      indexes.set(d.name, index);
    }

    const matcher = compileDomains(config.domains);
    const scan = scanOptionsFor(layout.root, config.data.maxFileBytes);
    const dropped = new Map<string, Set<string>>();
    const added = new Map<string, Pending[]>();
    const drop = (domain: string, rel: string) => getOrSet(dropped, domain, () => new Set()).add(rel);
    // A changed notebook is its parts: the ones indexed now, and the ones it has now.
    const expanded = rels.flatMap((rel) => {
      if (!isNotebook(rel)) return [rel];
      const indexed = [...indexes.values()].flatMap((ix) => Object.keys(ix.files).filter((p) => p.startsWith(`${rel}#`)));
      return [...new Set([...indexed, ...readNotebookParts(join(layout.root, rel), rel).map((p) => p.relPath)])];
    });
    for (const rel of expanded) {
      let owner: string | undefined;
      for (const [domain, ix] of indexes) if (Object.hasOwn(ix.files, rel)) owner = domain;
      const check = checkPath(layout.root, realPathOf(rel), scan, cache.ignores);
      if (!owner && 'gone' in check) {
        // A deleted or renamed folder: everything indexed under it goes.
        for (const [domain, ix] of indexes) for (const f of Object.keys(ix.files)) if (f.startsWith(rel + '/')) drop(domain, f);
        continue;
      }
      const file = 'file' in check ? check.file : undefined;
      const target = file ? matcher.domainOf(rel) : undefined;
      // Undefined when deleted between the check and the read, or a notebook lost that part: gone.
      const content = file && target ? readDocument(file.absPath, rel) : undefined;
      const hash = content ? contentHash(content) : undefined;
      if (owner && owner === target && indexes.get(owner)!.files[rel]!.h === hash) continue; // touched, not changed
      if (owner) drop(owner, rel);
      if (target && content && hash) getOrSet(added, target, () => []).push({ rel, content, hash });
    }

    // A byte-identical copy of a file that stays in the datasets (or of one added just before it)
    // is left out, as a full build leaves it out: no text is both trained on and held out.
    if (added.size) {
      const byHash = new Set<string>();
      for (const [domain, ix] of indexes) for (const [p, f] of Object.entries(ix.files)) if (!dropped.get(domain)?.has(p)) byHash.add(f.h);
      for (const [domain, list] of [...added]) {
        const kept = list.filter((p) => !byHash.has(p.hash) && (byHash.add(p.hash), true));
        if (kept.length) added.set(domain, kept);
        else added.delete(domain);
      }
    }
    const touched = new Set([...dropped.keys(), ...added.keys()]);
    if (touched.size === 0) return { kind: 'unchanged', manifest, changed: 0, removed: 0, rebuiltDomains: [], compacted: [] };
    const result: UpdateResult = { kind: 'updated', manifest, changed: 0, removed: 0, rebuiltDomains: [], compacted: [], files: [] };
    for (const domain of touched) {
      const old = indexes.get(domain)!;
      const gone = dropped.get(domain) ?? new Set<string>();
      const fresh = added.get(domain) ?? [];
      const freshRels = new Set(fresh.map((p) => p.rel));
      const removed = [...gone].filter((r) => !freshRels.has(r));
      result.removed += removed.length;
      result.changed += fresh.length;
      for (const [path, change] of [...fresh.map((p) => [p.rel, 'tokenized'] as const), ...removed.map((r) => [r, 'removed'] as const)]) {
        if (result.files!.length < 100) result.files!.push({ path, domain, change });
      }
      const prev = manifest.domains.find((d) => d.domain === domain);
      let index = old;
      let totals: IndexTotals | undefined;
      try {
        totals = prev && appendInPlace(layout, tokenizer, config.data.valFraction, old, gone, fresh, totalsOf(prev));
      } catch (e) {
        cache.forget(domain); // the copy in memory may be ahead of the disk now
        throw e;
      }
      if (totals) {
        cache.remember(index);
        if (needsCompaction(index, totals)) {
          index = compactDomain(layout, index);
          cache.remember(index);
          result.compacted.push(domain);
        }
      } else {
        const all = new Set(Object.keys(old.files));
        for (const rel of gone) all.delete(rel);
        for (const rel of freshRels) all.add(rel);
        index = buildDomain(layout, domain, [...all].sort(), config.data.valFraction, tokenizer);
        cache.remember(index);
        result.rebuiltDomains.push(domain);
      }
      const stats = publishDomain(layout, index, totals);
      manifest.domains = manifest.domains.map((d) => (d.domain === domain ? stats : d));
    }
    manifest.updated = new Date().toISOString();
    writeJsonAtomic(manifestPath(layout), manifest);
    result.emptied = emptiedSince(manifest);
    return result;
  }, waitMs);
}
