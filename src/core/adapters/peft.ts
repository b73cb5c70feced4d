import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { BaseModelInfo } from '../models/base';
import { MoaError } from '../util/errors';
import { readJsonObject } from '../util/json';
import { publishDir, tempPathFor, writeJsonAtomic } from '../util/atomic';
import { SAFE_NAME } from '../names';
import { adapterConfigFrom, loadExpertWeights, type AdapterConfig } from './store';

const FILES = ['adapter_config.json', 'adapter_model.safetensors'] as const;

/** What PEFT can express that a MoA expert cannot hold, refused rather than half-loaded; else the config, raw and as read. */
function refuseUnsupported(dir: string): { raw: Record<string, unknown>; cfg: AdapterConfig } {
  const file = join(dir, 'adapter_config.json');
  const c = readJsonObject(file, 'A PEFT adapter folder has adapter_config.json and adapter_model.safetensors.');
  if (!existsSync(join(dir, 'adapter_model.safetensors'))) {
    const pickle = ['adapter_model.bin', 'adapter_model.pt'].find((f) => existsSync(join(dir, f)));
    throw new MoaError(
      pickle ? `${join(dir, pickle)}: pickle checkpoints are never loaded (they can run code)` : `${join(dir, 'adapter_model.safetensors')}: missing`,
      pickle ? 'Convert it with peft: model.save_pretrained(dir, safe_serialization=True).' : undefined,
    );
  }
  const mts = c['modules_to_save'];
  if (Array.isArray(mts) && mts.length) throw new MoaError(`${file}: modules_to_save ${JSON.stringify(mts)} is not supported (an expert holds LoRA matrices only, not full heads)`);
  if (c['fan_in_fan_out'] === true) throw new MoaError(`${file}: fan_in_fan_out adapters (Conv1D layers, GPT-2 style) are not supported`);
  if (c['layers_to_transform'] !== undefined && c['layers_to_transform'] !== null) throw new MoaError(`${file}: layers_to_transform is not supported (an expert covers every layer)`);
  return { raw: c, cfg: adapterConfigFrom(file, c) };
}

/** The base model an adapter config names, when it plainly is not `base` (a warning, not a refusal: names vary). */
function baseMismatch(c: Record<string, unknown>, base: BaseModelInfo): string | undefined {
  const named = c['base_model_name_or_path'];
  if (typeof named !== 'string' || !named) return undefined;
  const tail = (s: string) => s.replace(/[\\/]+$/, '').split(/[\\/]/).pop()!.toLowerCase();
  if (named === base.name || tail(named) === tail(base.name) || tail(named) === tail(base.dir)) return undefined;
  return `the adapter was made for base model "${named}", this workspace uses "${base.name}"; its shapes fit, but its behaviour may not`;
}

export interface ImportResult {
  dir: string;
  warnings: string[];
}

/**
 * Imports a PEFT LoRA folder as an expert after checking it against the base model (target modules,
 * layer count, every shape, finite weights). The expert appears in one rename: a reader never sees
 * half of it, and an expert it replaces is kept as the previous version.
 */
export function importPeftAdapter(src: string, expertsDir: string, base: BaseModelInfo, name?: string, force = false): ImportResult {
  const expert = name ?? basename(src).toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^-+/, '');
  if (!SAFE_NAME.test(expert)) throw new MoaError(`"${expert}" is not a valid expert name (lowercase letters, digits, "-", "_")`, `Give the name as the second argument: moa experts import ${src} NAME`);
  const { raw: config, cfg } = refuseUnsupported(src);
  loadExpertWeights(src, expert, base);
  const target = join(expertsDir, expert);
  if (existsSync(target) && !force) throw new MoaError(`${target}: an expert named "${expert}" exists`, `Add --force to replace it (the old one is kept for "moa experts rollback ${expert}"), or give another name: moa experts import ${src} NAME`);
  publishDir(target, (staging) => {
    for (const f of FILES) copyFileSync(join(src, f), join(staging, f));
    // A pattern (a regex, "all-linear") becomes the list it selects, so the trainer reads the
    // expert as this reader did: a list is what both sides accept.
    if (typeof config['target_modules'] === 'string') writeJsonAtomic(join(staging, 'adapter_config.json'), { ...config, target_modules: cfg.targetModules });
    writeJsonAtomic(join(staging, 'expert.json'), { v: 1, domain: expert, base_model: base.name, imported_from: src, created: new Date().toISOString() });
  });
  const warning = baseMismatch(config, base);
  return { dir: target, warnings: warning ? [warning] : [] };
}

/** Writes an expert as a plain PEFT folder (adapter_config.json + adapter_model.safetensors) for peft, LoRAX, vLLM… */
export function exportExpert(expertDir: string, dest: string, force = false): string[] {
  refuseUnsupported(expertDir);
  if (existsSync(dest) && readdirSync(dest).some((f) => (FILES as readonly string[]).includes(f)) && !force) {
    throw new MoaError(`${dest}: already holds a PEFT adapter`, 'Use --force to overwrite it.');
  }
  mkdirSync(dest, { recursive: true });
  return FILES.map((f) => {
    const tmp = tempPathFor(join(dest, f));
    copyFileSync(join(expertDir, f), tmp);
    renameSync(tmp, join(dest, f));
    return join(dest, f);
  });
}
