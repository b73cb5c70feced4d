import type { BaseModelInfo } from '../models/base';
import { loadExpertWeights } from '../adapters/store';
import { ggufArch, ggufModuleName, interleaveRows } from './llama';
import { writeGguf, type GgufTensor } from './write';

/**
 * An expert as a llama.cpp LoRA adapter (what llama.cpp's convert_lora_to_gguf.py writes):
 * `general.type = adapter`, `adapter.type = lora`, `adapter.lora.alpha`, and for every adapted
 * weight `<weight>.lora_a` [r, in] and `<weight>.lora_b` [out, r]. llama.cpp scales by alpha / r,
 * so alpha is written as the expert's own scaling × r (rsLoRA's alpha / √r included).
 */
export function exportExpertGguf(expertDir: string, name: string, base: BaseModelInfo, file: string): void {
  const w = loadExpertWeights(expertDir, name, base);
  const arch = ggufArch(base);
  const infos: Omit<GgufTensor, 'data'>[] = [];
  const data = new Map<string, Float32Array>();
  for (const [module, m] of w.modules) {
    for (let l = 0; l < base.numLayers; l++) {
      const target = ggufModuleName(l, module);
      infos.push({ name: `${target}.lora_a`, shape: [w.r, m.inFeatures], type: 'f32' }, { name: `${target}.lora_b`, shape: [m.outFeatures, w.r], type: 'f32' });
      data.set(`${target}.lora_a`, m.A[l]!);
      // The output rows follow the base weight's reordering (llama.ts).
      data.set(`${target}.lora_b`, arch.reorderQK && (module === 'q_proj' || module === 'k_proj') ? interleaveRows(m.B[l]!, m.outFeatures, w.r, base.headDim) : m.B[l]!);
    }
  }
  writeGguf(file, { 'general.architecture': arch.name, 'general.type': 'adapter', 'general.name': name, 'adapter.type': 'lora', 'adapter.lora.alpha': { f32: w.scaling * w.r } }, infos, (n) => data.get(n)!);
}
