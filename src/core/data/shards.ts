import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { readJsonObjectOr } from '../util/json';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { MoaConfig } from '../config/schema';
import { compileDomains } from '../domains/classify';
import type { Tokenizer } from '../tokenizer/types';
import type { WorkspaceLayout } from '../paths';
import { MoaError } from '../util/errors';
import { tempPathFor, writeJsonAtomic } from '../util/atomic';
import { scanWorkspace, type SkipReason } from './scan';
import { chooseValidation } from './split';

export interface DomainStats {
  domain: string;
  files: number;
  bytes: number;
  trainFiles: number;
  valFiles: number;
  trainTokens: number;
  valTokens: number;
  fingerprint: string;
  trainPath: string;
  valPath: string;
}

export interface DatasetManifest {
  v: 1;
  tokenizer: string;
  created: string;
  domains: DomainStats[];
  skipped: Partial<Record<SkipReason, number>>;
  unassigned: number;
}

/** Appends uint32 token ids to a temp file; renamed into place only when complete. */
class ShardWriter {
  private readonly tmp: string;
  private readonly fd: number;
  tokens = 0;

  constructor(readonly target: string) {
    this.tmp = tempPathFor(target);
    this.fd = openSync(this.tmp, 'w');
  }

  append(ids: Uint32Array): void {
    // Shards are little-endian on disk whatever the host; x86 and arm64 are LE, so this is a view.
    const bytes = new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength);
    writeSync(this.fd, bytes);
    this.tokens += ids.length;
  }

  commit(): void {
    closeSync(this.fd);
    renameSync(this.tmp, this.target);
  }

  abort(): void {
    closeSync(this.fd);
    rmSync(this.tmp, { force: true });
  }
}

export function manifestPath(layout: WorkspaceLayout): string {
  return join(layout.dataDir, 'manifest.json');
}

export function readManifest(layout: WorkspaceLayout): DatasetManifest | undefined {
  const m = readJsonObjectOr(manifestPath(layout)) as DatasetManifest | undefined;
  return m && m.v === 1 && Array.isArray(m.domains) ? m : undefined;
}

export interface BuildOptions {
  onFile?: (relPath: string, domain: string) => void;
}

/**
 * Tokenizes every domain's files into train/val shards (each file as BOS, tokens, EOS) with stats
 * and a fingerprint of the inputs, so training can tell which experts are stale.
 */
export function buildDatasets(
  layout: WorkspaceLayout,
  config: MoaConfig,
  tokenizer: Tokenizer,
  opts: BuildOptions = {},
): DatasetManifest {
  if (config.domains.length === 0) throw new MoaError(`${layout.configFile}: no domains configured`, 'Add a domain or run "moa init --force".');
  const matcher = compileDomains(config.domains);
  const skipped: Partial<Record<SkipReason, number>> = {};
  const byDomain = new Map<string, { relPath: string; absPath: string; size: number }[]>();
  let unassigned = 0;
  // Only paths are held for the whole workspace; contents are read one file at a time below.
  for (const f of scanWorkspace(layout.root, {
    maxFileBytes: config.data.maxFileBytes,
    onSkip: (_p, reason) => (skipped[reason] = (skipped[reason] ?? 0) + 1),
  })) {
    const domain = matcher.domainOf(f.relPath);
    if (!domain) {
      unassigned++;
      continue;
    }
    const list = byDomain.get(domain) ?? [];
    list.push(f);
    byDomain.set(domain, list);
  }
  const stats: DomainStats[] = [];
  for (const d of config.domains) {
    const files = byDomain.get(d.name) ?? [];
    const dir = join(layout.dataDir, d.name);
    mkdirSync(dir, { recursive: true });
    const val = chooseValidation(files.map((f) => f.relPath), config.data.valFraction);
    const trainPath = join(dir, 'train.bin');
    const valPath = join(dir, 'val.bin');
    const train = new ShardWriter(trainPath);
    const held = new ShardWriter(valPath);
    const fp = createHash('sha256').update(tokenizer.id).update('\0');
    let bytes = 0;
    try {
      for (const f of files) {
        const content = readFileSync(f.absPath);
        fp.update(f.relPath).update('\0').update(content).update('\0');
        bytes += content.length;
        const ids = tokenizer.encode(content.toString('utf8'));
        const lead = tokenizer.bosId === null ? 0 : 1;
        const doc = new Uint32Array(ids.length + lead + 1);
        if (tokenizer.bosId !== null) doc[0] = tokenizer.bosId;
        doc.set(ids, lead);
        doc[doc.length - 1] = tokenizer.eosId;
        (val.has(f.relPath) ? held : train).append(doc);
        opts.onFile?.(f.relPath, d.name);
      }
      train.commit();
      held.commit();
    } catch (e) {
      train.abort();
      held.abort();
      throw e;
    }
    const s: DomainStats = {
      domain: d.name,
      files: files.length,
      bytes,
      trainFiles: files.length - val.size,
      valFiles: val.size,
      trainTokens: train.tokens,
      valTokens: held.tokens,
      fingerprint: fp.digest('hex'),
      trainPath,
      valPath,
    };
    writeJsonAtomic(join(dir, 'meta.json'), {
      v: 1,
      domain: d.name,
      dtype: 'uint32',
      tokenizer: tokenizer.id,
      files: s.files,
      bytes: s.bytes,
      train_tokens: s.trainTokens,
      val_tokens: s.valTokens,
      fingerprint: s.fingerprint,
    });
    stats.push(s);
  }
  const manifest: DatasetManifest = {
    v: 1,
    tokenizer: tokenizer.id,
    created: new Date().toISOString(),
    domains: stats,
    skipped,
    unassigned,
  };
  writeJsonAtomic(manifestPath(layout), manifest);
  return manifest;
}
