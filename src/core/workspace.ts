import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './util/atomic';
import { DEFAULT_BASE_MODEL, type MoaConfig } from './config/schema';
import { sectionDefaults } from './config/table';
import { loadConfig, saveConfig } from './config/load';
import { scanOptionsFor, scanWorkspace } from './data/scan';
import { buildDatasets, type DatasetManifest, type BuildOptions } from './data/shards';
import { suggestDomains, DEFAULT_SUGGEST, type SuggestOptions } from './domains/suggest';
import { resolveBaseModelDir } from './models/base';
import { loadTokenizer } from './tokenizer/load';
import type { Tokenizer } from './tokenizer/types';
import { watchDatasets, type DatasetWatcher, type DatasetWatchOptions } from './data/watch';
import type { ProductLayout, WorkspaceLayout } from './paths';
import { MoaError } from './util/errors';

export interface InitResult {
  config: MoaConfig;
  scannedFiles: number;
}

/** Writes `.moa/moa.json` with domains suggested from the workspace's file types. */
export function initWorkspace(layout: WorkspaceLayout, opts: { force?: boolean; suggest?: SuggestOptions } = {}): InitResult {
  if (existsSync(layout.configFile) && !opts.force) {
    throw new MoaError(`${layout.configFile}: already exists`, 'Use --force to overwrite it.');
  }
  let scanned = 0;
  const files = (function* () {
    for (const f of scanWorkspace(layout.root, scanOptionsFor(layout.root, sectionDefaults('data').maxFileBytes))) {
      scanned++;
      yield f;
    }
  })();
  const domains = suggestDomains(files, opts.suggest ?? DEFAULT_SUGGEST);
  const config: MoaConfig = {
    version: 1,
    baseModel: DEFAULT_BASE_MODEL,
    domains,
    lora: sectionDefaults('lora'),
    training: sectionDefaults('training'),
    data: sectionDefaults('data'),
    router: sectionDefaults('router'),
    inference: sectionDefaults('inference'),
    routing: { mode: 'label' },
  };
  saveConfig(layout.configFile, config);
  writeMoaGitignore(layout);
  return { config, scannedFiles: scanned };
}

/**
 * What `git add -A` must not pick up from .moa/: caches, shards, runs and checkpoints (tens of MB,
 * rebuildable), per-user state and locks. The config is committed; so, by choice, are the experts
 * and the router (delete their lines to keep them out too). An existing file is left alone.
 */
export const MOA_GITIGNORE = `# Written by "moa init". Rebuildable or per-user files stay out of git;
# moa.json is committed, and so are experts/ and router/ unless you list them here.
cache/
runs/
baselines/
state.json
eval.json
report.html
.*.lock
.*.tmp-*
.*.prev/
`;

function writeMoaGitignore(layout: WorkspaceLayout): void {
  const file = join(layout.moaDir, '.gitignore');
  if (!existsSync(file)) writeFileAtomic(file, MOA_GITIGNORE);
}

/** The config and the tokenizer of its base model: what building datasets needs. */
function loadDataInputs(layout: WorkspaceLayout, product: ProductLayout): { config: MoaConfig; tokenizer: Tokenizer } {
  const { config } = loadConfig(layout.configFile);
  return { config, tokenizer: loadTokenizer(resolveBaseModelDir(config.baseModel, product, layout.root)) };
}

export function buildWorkspaceData(layout: WorkspaceLayout, product: ProductLayout, opts: BuildOptions = {}): DatasetManifest {
  const { config, tokenizer } = loadDataInputs(layout, product);
  return buildDatasets(layout, config, tokenizer, opts);
}

/** Watches the workspace and keeps its datasets current (see data/watch.ts). */
export function watchWorkspaceData(layout: WorkspaceLayout, product: ProductLayout, opts: Omit<DatasetWatchOptions, 'load'>): DatasetWatcher {
  return watchDatasets(layout, { ...opts, load: () => loadDataInputs(layout, product) });
}
