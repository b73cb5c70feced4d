import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { BaseModelInfo } from '../models/base';
import { MoaError } from '../util/errors';
import { readJsonObject } from '../util/json';
import { writeJsonAtomic } from '../util/atomic';
import { loadExpertWeights } from './store';

const FILES = ['adapter_config.json', 'adapter_model.safetensors'] as const;
const NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** What PEFT can express that a MoA expert cannot hold; refused with a message rather than half-loaded. */
function refuseUnsupported(dir: string): void {
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
  const patterns = c['rank_pattern'] ?? c['alpha_pattern'];
  if (patterns && typeof patterns === 'object' && Object.keys(patterns).length) throw new MoaError(`${file}: per-module rank_pattern/alpha_pattern is not supported`);
}

/**
 * Imports a PEFT LoRA folder as an expert after checking it against the base model (target modules,
 * layer count, every shape). The expert appears in one rename: a reader never sees half of it.
 */
export function importPeftAdapter(src: string, expertsDir: string, base: BaseModelInfo, name?: string, force = false): string {
  const expert = name ?? basename(src).toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^-+/, '');
  if (!NAME.test(expert)) throw new MoaError(`"${expert}" is not a valid expert name (lowercase letters, digits, "-", "_")`, 'Pass --name.');
  refuseUnsupported(src);
  loadExpertWeights(src, expert, base);
  const target = join(expertsDir, expert);
  if (existsSync(target) && !force) throw new MoaError(`${target}: an expert named "${expert}" exists`, 'Use --force to replace it, or --name to pick another name.');
  mkdirSync(expertsDir, { recursive: true });
  const tmp = join(expertsDir, `.import-${expert}-${randomBytes(4).toString('hex')}`);
  mkdirSync(tmp);
  try {
    for (const f of FILES) copyFileSync(join(src, f), join(tmp, f));
    writeJsonAtomic(join(tmp, 'expert.json'), { v: 1, domain: expert, base_model: base.name, imported_from: src, created: new Date().toISOString() });
    if (existsSync(target)) rmSync(target, { recursive: true, force: true });
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return target;
}

/** Writes an expert as a plain PEFT folder (adapter_config.json + adapter_model.safetensors) for peft, LoRAX, vLLM… */
export function exportExpert(expertDir: string, dest: string, force = false): string[] {
  refuseUnsupported(expertDir);
  if (existsSync(dest) && readdirSync(dest).some((f) => (FILES as readonly string[]).includes(f)) && !force) {
    throw new MoaError(`${dest}: already holds a PEFT adapter`, 'Use --force to overwrite it.');
  }
  mkdirSync(dest, { recursive: true });
  return FILES.map((f) => {
    const tmp = join(dest, `.${f}.tmp-${randomBytes(4).toString('hex')}`);
    copyFileSync(join(expertDir, f), tmp);
    renameSync(tmp, join(dest, f));
    return join(dest, f);
  });
}
