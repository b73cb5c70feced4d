import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BaseModelInfo } from '../models/base';
import { MoaError } from '../util/errors';
import { removeStaleTemps } from '../util/atomic';
import { exportExpertGguf } from './adapter';
import { exportBaseGguf } from './llama';
import type { GgmlType } from './write';

export const GGUF_TYPES: readonly GgmlType[] = ['f32', 'f16', 'q8_0', 'q4_0'];

/** The base's file name in an export folder: `moa-tiny.gguf`, or the model folder's name. */
export function baseGgufName(base: BaseModelInfo): string {
  const name = base.name.replace(/^builtin:/, '').split(/[\\/]/).filter(Boolean).pop() ?? 'base';
  return `${name.replace(/[^A-Za-z0-9._-]/g, '_')}.gguf`;
}

function refuseExisting(file: string, force: boolean): void {
  if (existsSync(file) && !force) throw new MoaError(`${file}: already there`, 'Use --force to overwrite.');
}

/** Writes `dir/name` with `write`, refusing to overwrite without `force`; leftovers of a killed export go first. */
function exportFile(dir: string, name: string, force: boolean, write: (file: string) => void): string {
  const file = join(dir, name);
  refuseExisting(file, force);
  mkdirSync(dir, { recursive: true });
  removeStaleTemps(dir);
  write(file);
  return file;
}

/** `moa base export-gguf`: the base model as one GGUF file (weights and tokenizer). */
export function exportBase(base: BaseModelInfo, dir: string, type: GgmlType, force = false, stop?: () => boolean): string {
  return exportFile(dir, baseGgufName(base), force, (file) => exportBaseGguf(base, file, type, stop));
}

/** `moa experts export --format gguf`: the expert as a llama.cpp LoRA adapter. */
export function exportExpertAsGguf(expertDir: string, name: string, base: BaseModelInfo, dir: string, force = false): string {
  return exportFile(dir, `${name}.gguf`, force, (file) => exportExpertGguf(expertDir, name, base, file));
}

/**
 * An Ollama Modelfile for the pair: the base, the expert as its one ADAPTER, and the prompt passed
 * as it is (a completion model: no chat template). Generation ends at the GGUF's end-of-text id.
 */
export function ollamaModelfile(base: BaseModelInfo, baseFile: string, adapterFile: string): string {
  return `# Ollama takes one adapter per model: this is ${base.name} with one MoA expert, no routing.\nFROM ./${baseFile}\nADAPTER ./${adapterFile}\nTEMPLATE """{{ .Prompt }}"""\nPARAMETER temperature 0.2\n`;
}

/** `moa experts export --format ollama`: base GGUF, expert GGUF and a Modelfile in `dir`. */
export function exportForOllama(expertDir: string, name: string, base: BaseModelInfo, dir: string, type: GgmlType, force = false, stop?: () => boolean): { files: string[]; create: string } {
  const modelfile = join(dir, 'Modelfile');
  refuseExisting(modelfile, force);
  const baseFile = exportBase(base, dir, type, force, stop);
  const adapter = exportExpertAsGguf(expertDir, name, base, dir, force);
  writeFileSync(modelfile, ollamaModelfile(base, baseGgufName(base), `${name}.gguf`));
  return { files: [baseFile, adapter, modelfile], create: `ollama create moa-${name} -f ${JSON.stringify(modelfile)}` };
}
