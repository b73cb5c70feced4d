import { totalmem } from 'node:os';
import { loadConfig } from '../../core/config/load';
import { staleForBase } from '../../core/adapters/catalog';
import { baseChoices, describeBase, formatBytes, setBaseModel, workspaceTrainingMemory, type BaseDescription } from '../../core/models/choice';
import type { MoaConfig } from '../../core/config/schema';
import { resolve } from 'node:path';
import { exportBase, GGUF_TYPES } from '../../core/gguf/export';
import { hubCacheDir } from '../../core/models/hfCache';
import type { GgmlType } from '../../core/gguf/write';
import { EXIT, UsageError, product, print, workspaceOf } from '../args';
import type { Values } from '../args';

function describe(d: BaseDescription, config: MoaConfig): { text: string; json: Record<string, unknown> } {
  const cpu = workspaceTrainingMemory(d.info, config, 4);
  const gpu = workspaceTrainingMemory(d.info, config, 2);
  const text = [
    `${d.info.name}: ${d.info.modelType}, ${(d.info.parameters / 1e6).toFixed(1)}M parameters, ${d.info.numLayers} layers, hidden ${d.info.hiddenSize}, vocab ${d.info.vocabSize}`,
    `  folder ${d.info.dir} (${formatBytes(d.sizeBytes)} of weights)`,
    `  fill-in-the-middle: ${d.fim ?? 'no FIM tokens (completions use the text before the cursor only)'}`,
    `  training ${config.domains.length} experts (r ${config.lora.r}, batch ${config.training.batchSize} × ${config.training.seqLen} tokens each): about ${formatBytes(gpu.total)} on a GPU (bf16), ${formatBytes(cpu.total)} on the CPU (fp32; this machine has ${formatBytes(totalmem())}), before framework overhead`,
  ].join('\n');
  return { text, json: { ...d, memory: { gpuBf16: gpu, cpuFp32: cpu, machineBytes: totalmem() } } };
}

export function ggufType(values: Values): GgmlType {
  const t = values.type ?? 'f16';
  if (!(GGUF_TYPES as readonly string[]).includes(t)) throw new UsageError(`--type must be one of ${GGUF_TYPES.join(', ')}; got "${t}"`);
  return t as GgmlType;
}

/** `moa base [set NAME]`: what the base model is and what training it needs; or choose another. */
export async function cmdBase(values: Values, positionals: string[]): Promise<number> {
  const [sub = 'show', name] = positionals;
  const layout = workspaceOf(values);
  const { config } = loadConfig(layout.configFile);
  if (sub === 'show') {
    const d = describe(describeBase(config.baseModel, product, layout.root), config);
    print(values, d.text, d.json);
    return EXIT.ok;
  }
  if (sub === 'list') {
    const choices = baseChoices(product, layout.root);
    const lines = choices.map((c) => `${c.name === config.baseModel ? '*' : ' '} ${c.name.padEnd(40)} ${c.description.info.modelType.padEnd(8)} ${`${(c.description.info.parameters / 1e6).toFixed(1)}M`.padStart(9)} ${formatBytes(c.description.sizeBytes).padStart(9)}  ${c.description.fim ? `FIM (${c.description.fim})` : 'no FIM'}`);
    print(values, [...lines, `(${hubCacheDir()}: Hugging Face cache; "moa base set hf:ORG/NAME" picks one)`].join('\n'), choices.map((c) => ({ name: c.name, ...c.description })));
    return EXIT.ok;
  }
  if (sub === 'export-gguf') {
    if (!name) throw new UsageError('moa base export-gguf needs a destination folder');
    const file = exportBase(describeBase(config.baseModel, product, layout.root).info, resolve(name), ggufType(values), values.force);
    print(values, `wrote ${file}`, { file });
    return EXIT.ok;
  }
  if (sub !== 'set' || !name) throw new UsageError('usage: moa base [show] | moa base list | moa base set builtin:moa-tiny|hf:ORG/NAME|FOLDER | moa base export-gguf DIR [--type f32|f16|q8_0|q4_0]');
  // Read it first: a folder that is not a model never reaches the config.
  const d = describeBase(name, product, layout.root);
  setBaseModel(layout.configFile, name);
  const stale = staleForBase(layout, name);
  const d2 = describe(d, { ...config, baseModel: name });
  const note = stale.length ? `\n${stale.length} expert(s) were trained on another base and are now stale: ${stale.join(', ')}; retrain with "moa train"` : '';
  print(values, `base model set to ${name}\n${d2.text}${note}`, { ...d2.json, stale });
  return EXIT.ok;
}
