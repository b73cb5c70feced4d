/** PEFT's key names for a LoRA on a Llama-family model (DESIGN.md, "On disk"). */
export const ATTENTION_TARGETS = new Set(['q_proj', 'k_proj', 'v_proj', 'o_proj']);
export const MLP_TARGETS = new Set(['gate_proj', 'up_proj', 'down_proj']);

export function moduleParent(module: string): 'self_attn' | 'mlp' {
  return MLP_TARGETS.has(module) ? 'mlp' : 'self_attn';
}

export function loraKey(layer: number, module: string, which: 'A' | 'B'): string {
  return `base_model.model.model.layers.${layer}.${moduleParent(module)}.${module}.lora_${which}.weight`;
}
