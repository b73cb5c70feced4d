import { existsSync } from 'node:fs';
import { DEFAULT_BASE_MODEL, defaultData, defaultLora, defaultRouter, defaultTraining, type MoaConfig } from './config/schema';
import { loadConfig, saveConfig } from './config/load';
import { scanWorkspace } from './data/scan';
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
    for (const f of scanWorkspace(layout.root, { maxFileBytes: defaultData().maxFileBytes })) {
      scanned++;
      yield f;
    }
  })();
  const domains = suggestDomains(files, opts.suggest ?? DEFAULT_SUGGEST);
  const config: MoaConfig = {
    version: 1,
    baseModel: DEFAULT_BASE_MODEL,
    domains,
    lora: defaultLora(),
    training: defaultTraining(),
    data: defaultData(),
    router: defaultRouter(),
    routing: { mode: 'label' },
  };
  saveConfig(layout.configFile, config);
  return { config, scannedFiles: scanned };
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
