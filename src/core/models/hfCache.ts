import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { MoaError } from '../util/errors';

/**
 * Base models named `hf:ORG/NAME[@REVISION]`, found in the Hugging Face hub cache the way the hub
 * client lays it out (`models--ORG--NAME/refs/<branch>` holding a commit, `snapshots/<commit>/`
 * whose files link into `blobs/`). Nothing is ever downloaded here.
 */
export const HF_PREFIX = 'hf:';
const PART = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;

/** The hub cache folder: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env['HF_HUB_CACHE']) return env['HF_HUB_CACHE'];
  if (env['HF_HOME']) return join(env['HF_HOME'], 'hub');
  return join(env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'huggingface', 'hub');
}

export function parseHfName(name: string): { repo: string; revision: string } {
  const m = /^hf:([^/@]+)\/([^/@]+)(?:@([^/@]+))?$/.exec(name);
  if (!m || !PART.test(m[1]!) || !PART.test(m[2]!) || m[1]!.includes('..') || m[2]!.includes('..') || (m[3] !== undefined && (!PART.test(m[3]) || m[3].includes('..')))) {
    throw new MoaError(`"${name}" is not a Hugging Face model name`, 'Write it as hf:ORG/NAME or hf:ORG/NAME@REVISION (a branch, tag or commit).');
  }
  return { repo: `${m[1]}/${m[2]}`, revision: m[3] ?? 'main' };
}

/** The snapshot folder of `hf:ORG/NAME[@REVISION]`, or an error that says how to fetch it. */
export function resolveHfModel(name: string, cache = hubCacheDir()): string {
  const { repo, revision } = parseHfName(name);
  const folder = join(cache, `models--${repo.replace('/', '--')}`);
  const fetch = `hf download ${repo}${revision === 'main' ? '' : ` --revision ${revision}`}`;
  const ref = join(folder, 'refs', revision);
  const commit = existsSync(ref) ? readFileSync(ref, 'utf8').trim() : revision;
  const snapshot = join(folder, 'snapshots', commit);
  if (!/^[A-Za-z0-9._-]+$/.test(commit) || !existsSync(join(snapshot, 'config.json'))) {
    throw new MoaError(`${name}: not in the Hugging Face cache (${existsSync(folder) ? `${folder} has no snapshot for "${revision}"` : `no ${folder}`})`, `MoA Studio never downloads models; run: ${fetch}`);
  }
  return snapshot;
}

/** Every model in the cache with a `main` snapshot holding config.json: `hf:` names and folders. */
export function cachedHfModels(cache = hubCacheDir()): { name: string; dir: string }[] {
  if (!existsSync(cache)) return [];
  const out: { name: string; dir: string }[] = [];
  for (const entry of readdirSync(cache).sort()) {
    const m = /^models--([^-].*?)--(.+)$/.exec(entry);
    if (!m) continue;
    const name = `${HF_PREFIX}${m[1]}/${m[2]}`;
    try {
      out.push({ name, dir: resolveHfModel(name, cache) });
    } catch {
      // not a model with a main snapshot (a dataset, a partial download): not offered
    }
  }
  return out;
}
