/**
 * The one declaration of `.moa/moa.json`'s settings: each key's kind, default, bounds and words.
 * The TypeScript types (schema.ts), the validator (validate.ts) and the shipped JSON Schema
 * (`schemas/moa.schema.json`, written from `configJsonSchema()` by the build) all come from here.
 */

interface FieldBase {
  description?: string;
}
export interface NumberField extends FieldBase {
  kind: 'number' | 'integer';
  default: number;
  min: number;
  max: number;
}
export interface StringsField extends FieldBase {
  kind: 'strings';
  default: readonly string[];
  /** The only values allowed, when the list is closed. */
  oneOf?: readonly string[];
}
export interface EnumField extends FieldBase {
  kind: 'enum';
  default: string;
  oneOf: readonly string[];
}
export type Field = NumberField | StringsField | EnumField;
export interface Section {
  description?: string;
  fields: Record<string, Field>;
}

const int = (dflt: number, min: number, max: number, description?: string): NumberField => ({ kind: 'integer', default: dflt, min, max, description });
const num = (dflt: number, min: number, max: number, description?: string): NumberField => ({ kind: 'number', default: dflt, min, max, description });

export const ROUTING_MODES = ['label', 'learned', 'auto', 'pinned', 'off'] as const;
export const ATTENTION_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const;
export const LORA_MODULES = [...ATTENTION_MODULES, 'gate_proj', 'up_proj', 'down_proj'] as const;
export const DEFAULT_BASE_MODEL = 'builtin:moa-tiny';
export const WEIGHT_TYPES = ['f32', 'int8', 'int4'] as const;

export const SECTIONS = {
  lora: {
    fields: {
      r: int(8, 1, 1024, 'LoRA rank.'),
      alpha: num(16, 0, 1e6, 'LoRA alpha: the update is scaled by alpha / r.'),
      dropout: num(0, 0, 0.99),
      targetModules: { kind: 'strings', default: ATTENTION_MODULES, oneOf: LORA_MODULES, description: 'The projections each expert adapts.' },
    },
  },
  training: {
    fields: {
      steps: int(200, 1, 1e9),
      batchSize: int(8, 1, 4096, 'Sequences per expert per step.'),
      seqLen: int(128, 8, 1 << 20),
      lr: num(2e-3, 0, 10),
      warmupSteps: int(10, 0, 1e9),
      seed: int(0, 0, 2 ** 31 - 1),
      minutes: num(8, 0, 60 * 24 * 30, 'Wall-clock budget for a whole training run (experts, router, baseline) in minutes: the learning-rate schedule follows time or steps, whichever is further along. 0: steps alone decide.'),
      maxEpochs: num(4, 0, 1e6, "An expert stops once it has seen its domain's training tokens this many times, so a small domain is not trained into memorising its few files. 0: no cap."),
      patience: int(3, 0, 1e6, 'An expert stops after this many evaluations without a held-out improvement, and keeps its best weights. 0: never.'),
      evalWindows: int(16, 1, 4096, 'Held-out windows per domain in each evaluation during training: bounds what an evaluation costs.'),
      fimRate: num(0.5, 0, 1, "When the base model has fill-in-the-middle tokens, this share of the experts' training windows is rearranged prefix-suffix-middle (or suffix-prefix-middle), so experts learn to use the text after the cursor. 0: off. No effect on a base without FIM tokens (the built-in moa-tiny)."),
    },
  },
  data: {
    fields: {
      maxFileBytes: int(1024 * 1024, 1, 1 << 30, 'Larger files are skipped.'),
      valFraction: num(0.1, 0, 0.9, "Share of each domain's files held out for evaluation."),
    },
  },
  router: {
    description: 'Stage 2: the per-layer router trained with L = L_LM + η·L_cls.',
    fields: {
      steps: int(100, 1, 1e9),
      eta: num(0.1, 0, 1e3, 'Weight of the routing classification loss.'),
      expertLrMult: num(0.1, 0, 10, "Experts' learning rate in stage 2 relative to stage 1; 0 freezes them."),
      topK: int(1, 1, 64, 'Experts the per-layer routers mix while stage 2 trains (a completion is served by the one expert the n-gram decision picks).'),
    },
  },
  inference: {
    description: 'How completions and evaluation run the base model (onnxruntime).',
    fields: {
      weights: {
        kind: 'enum',
        default: 'f32',
        oneOf: WEIGHT_TYPES,
        description:
          "The base's weights in the exported graph: f32, or int8 / int4 in blocks of 32 (onnxruntime's MatMulNBits, activations quantized per block). The experts stay float, so routing and switching are unchanged. Measured (bench/core/RESULTS.md): int8 decodes 1.2-2.7x faster than f32 on 135M-0.5B models with held-out loss within 0.1 %; int4 within about 1.5 %. moa eval reports the loss of what is served.",
      },
    },
  },
  routing: {
    fields: {
      mode: {
        kind: 'enum',
        default: 'label',
        oneOf: ROUTING_MODES,
        description:
          "label: the file's domain picks its expert; learned: the trained router, from the text before the cursor; auto: labels, except inside an embedded block of another language (a fenced block, a SQL string), served by that language's domain or the router; pinned: one expert for every file; off: base model.",
      },
    },
  },
} as const satisfies Record<string, Section>;

export type SectionName = keyof typeof SECTIONS;

/** A section's values as the validated config holds them. */
export type SectionValues<S extends Section> = {
  -readonly [K in keyof S['fields']]: S['fields'][K] extends EnumField ? S['fields'][K]['oneOf'][number] : S['fields'][K] extends StringsField ? string[] : number;
};

export type ConfigSections = { [N in SectionName]: SectionValues<(typeof SECTIONS)[N]> };

/** A section's defaults (fresh arrays: callers may change what they get). */
export function sectionDefaults<N extends SectionName>(name: N): ConfigSections[N] {
  const fields: Record<string, Field> = SECTIONS[name].fields;
  return Object.fromEntries(Object.entries(fields).map(([k, f]) => [k, f.kind === 'strings' ? [...f.default] : f.default])) as ConfigSections[N];
}
