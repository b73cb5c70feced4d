import { existsSync, readdirSync, statSync } from 'node:fs';
import { isObject, readJsonObject, readJsonObjectOr } from '../util/json';
import { join } from 'node:path';
import type { BaseModelInfo } from '../models/base';
import { MoaError, errorMessage } from '../util/errors';
import { ATTENTION_TARGETS, MLP_TARGETS, loraKey, moduleParent } from './peftKeys';
import { countElements, readSafetensors, readSafetensorsHeader, tensorToFloat32, type SafetensorsFile, type TensorInfo } from './safetensors';
import { recoverPublished } from '../util/atomic';

export interface ExpertMeta {
  domain?: string;
  run_id?: string;
  steps?: number;
  train_loss?: number;
  val_loss?: number;
  fingerprint?: string;
  created?: string;
  /** The base model it was trained on (or imported for), as the config names it. */
  base_model?: string;
}

export interface ExpertSummary {
  name: string;
  dir: string;
  status: 'ok' | 'broken';
  reason?: string;
  r?: number;
  alpha?: number;
  targetModules?: string[];
  sizeBytes?: number;
  /** LoRA parameters (from the safetensors header's shapes). */
  parameters?: number;
  meta: ExpertMeta;
}

export interface AdapterConfig {
  r: number;
  alpha: number;
  targetModules: string[];
  useRslora: boolean;
}

export interface ModuleWeights {
  inFeatures: number;
  outFeatures: number;
  /** Per layer: A as [r, in] and B as [out, r], row-major. */
  A: Float32Array[];
  B: Float32Array[];
}

export interface ExpertWeights {
  name: string;
  r: number;
  /** PEFT's scaling: alpha / r, or alpha / sqrt(r) with rsLoRA. */
  scaling: number;
  modules: Map<string, ModuleWeights>;
}

/** Larger than any sensible LoRA scale; a value past it is a corrupt or hostile config. */
const MAX_ALPHA = 65536;

/** adapter_config.json as an expert; what we cannot compute exactly is refused, naming the option. */
export function readAdapterConfig(dir: string): AdapterConfig {
  const file = join(dir, 'adapter_config.json');
  return adapterConfigFrom(file, readJsonObject(file));
}

/** The rules of `readAdapterConfig` on a parsed object (pure: the fuzz tests feed it anything). */
export function adapterConfigFrom(file: string, c: unknown): AdapterConfig {
  if (!isObject(c)) throw new MoaError(`${file}: expected a JSON object`);
  if (c['peft_type'] !== 'LORA') throw new MoaError(`${file}: peft_type ${JSON.stringify(c['peft_type'])} is not supported (only LORA)`);
  if (c['use_dora'] === true) throw new MoaError(`${file}: DoRA adapters are not supported`);
  const r = c['r'];
  if (typeof r !== 'number' || !Number.isInteger(r) || r <= 0 || r > 4096) throw new MoaError(`${file}: "r" must be an integer from 1 to 4096`);
  const alphaRaw = c['lora_alpha'] ?? r;
  if (typeof alphaRaw !== 'number' || !Number.isFinite(alphaRaw) || alphaRaw <= 0 || alphaRaw > MAX_ALPHA) {
    throw new MoaError(`${file}: "lora_alpha" ${JSON.stringify(alphaRaw)} must be a number above 0 and at most ${MAX_ALPHA}`);
  }
  const bias = c['bias'] ?? 'none';
  if (bias !== 'none') throw new MoaError(`${file}: bias ${JSON.stringify(bias)} is not supported: an expert holds LoRA matrices only, so the bias tensors would be dropped`, 'Train the adapter with bias="none".');
  for (const key of ['rank_pattern', 'alpha_pattern'] as const) {
    const p = c[key];
    if (p !== undefined && p !== null && !(typeof p === 'object' && !Array.isArray(p) && Object.keys(p).length === 0)) {
      throw new MoaError(`${file}: ${key} ${JSON.stringify(p).slice(0, 120)} is not supported (every module of an expert has one rank and one scale)`);
    }
  }
  if (c['use_rslora'] !== undefined && typeof c['use_rslora'] !== 'boolean') throw new MoaError(`${file}: "use_rslora" must be true or false`);
  const init = c['init_lora_weights'];
  // PiSSA, OLoRA, LoftQ, CorDA… initialise from the base's weights and change them: such an
  // adapter is only right on the modified base, which is not what a user has.
  if (init !== undefined && init !== null && init !== true && init !== false && init !== 'gaussian') {
    throw new MoaError(`${file}: init_lora_weights ${JSON.stringify(init).slice(0, 60)} is not supported: this initialisation changes the base model's weights too, so the adapter alone is not the model it was trained as`, 'Convert it to a plain LoRA with peft (save_pretrained(..., path_initial_model_for_weight_conversion=...)), then import that.');
  }
  const tm = c['target_modules'];
  // peft's list entries match a module whose name is the entry or ends with "." + the entry; a
  // saved "all-linear" comes back as full module names.
  const listed = Array.isArray(tm) && tm.every((x) => typeof x === 'string') ? (tm as string[]).map((x) => /(?:^|\.)([a-z_]+)$/.exec(x)?.[1] ?? x) : [];
  const targetModules = typeof tm === 'string' ? targetsOfPattern(file, tm) : listed;
  const unknown = targetModules.filter((m) => !ATTENTION_TARGETS.has(m) && !MLP_TARGETS.has(m));
  if (targetModules.length === 0 || unknown.length) {
    throw new MoaError(`${file}: target_modules ${JSON.stringify(tm)?.slice(0, 200)} must name Llama projections (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)`);
  }
  return { r, alpha: alphaRaw, targetModules: [...new Set(targetModules)], useRslora: c['use_rslora'] === true };
}

const PROJECTIONS = [...ATTENTION_TARGETS, ...MLP_TARGETS];

/**
 * The projections a string `target_modules` selects, as peft reads one: "all-linear" is every
 * linear layer but the output head; any other string is a regular expression that must match a
 * module's whole name (model.layers.3.self_attn.q_proj), not a module name.
 */
export function targetsOfPattern(file: string, pattern: string): string[] {
  if (pattern === 'all-linear') return PROJECTIONS;
  let re: RegExp;
  try {
    re = new RegExp(`^(?:${pattern})$`);
  } catch (e) {
    throw new MoaError(`${file}: target_modules ${JSON.stringify(pattern).slice(0, 120)} is not a regular expression this reader understands (${(e as Error).message})`, 'Give target_modules as a list of module names.');
  }
  const path = (layer: number, m: string) => `model.layers.${layer}.${moduleParent(m)}.${m}`;
  // The layers the pattern covers are checked against the tensors (every layer, or refused).
  return PROJECTIONS.filter((m) => Array.from({ length: 128 }, (_, l) => l).some((l) => re.test(path(l, m))));
}

const LORA_KEY = /^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+)\.lora_([AB])\.weight$/;

/**
 * The tensors a header declares against the config beside them (no data read): every key a LoRA
 * key of a configured module, each A of rank r, each B of rank r, every module on the same layers.
 * This is what catches an expert torn between two writes (new weights, old config).
 */
export function checkAdapterTensors(file: string, cfg: AdapterConfig, tensors: Map<string, TensorInfo>): number {
  const layers = new Map<string, Set<number>>();
  for (const [key, t] of tensors) {
    const m = LORA_KEY.exec(key);
    if (!m) throw new MoaError(`${file}: tensor "${key}" is not a LoRA matrix of a Llama projection`);
    const [, layer, , module, which] = m;
    if (!cfg.targetModules.includes(module!)) throw new MoaError(`${file}: tensor "${key}" is for ${module}, which adapter_config.json does not target`);
    const rankAxis = which === 'A' ? 0 : 1;
    if (t.shape.length !== 2 || t.shape[rankAxis] !== cfg.r) {
      throw new MoaError(`${file}: ${key} has shape [${t.shape}] but adapter_config.json says rank ${cfg.r}`, 'The expert was written halfway; roll it back ("moa experts rollback") or retrain it.');
    }
    const set = layers.get(`${module}.${which}`) ?? new Set<number>();
    set.add(Number(layer));
    layers.set(`${module}.${which}`, set);
  }
  const counts = cfg.targetModules.flatMap((m) => (['A', 'B'] as const).map((w) => ({ key: `${m}.lora_${w}`, n: layers.get(`${m}.${w}`)?.size ?? 0 })));
  const n = counts[0]!.n;
  const odd = counts.find((c) => c.n !== n || c.n === 0);
  if (odd) throw new MoaError(`${file}: ${odd.key} is present on ${odd.n} layers, ${counts[0]!.key} on ${n}: the adapter is incomplete`);
  return n;
}

/** The folder an expert is read from: finishing a publish a kill interrupted (util/atomic). */
function expertFolders(expertsDir: string): string[] {
  const names = readdirSync(expertsDir);
  for (const name of names) {
    const m = /^\.(.+)\.prev$/.exec(name);
    if (m && !names.includes(m[1]!)) {
      try {
        recoverPublished(join(expertsDir, m[1]!));
      } catch {
        // another process finished it first, or it cannot be moved: listed as it is
      }
    }
  }
  return readdirSync(expertsDir).filter((n) => !n.startsWith('.')).sort();
}

/** The projections an adapter folder targets (the mixed baseline's, say); undefined when it has no readable config. */
export function adapterTargets(dir: string): string[] | undefined {
  try {
    return existsSync(join(dir, 'adapter_config.json')) ? readAdapterConfig(dir).targetModules : undefined;
  } catch {
    return undefined; // a broken adapter is refused, with its reason, when it is loaded
  }
}

/** The projections an ONNX graph needs LoRA inputs for to serve every usable expert and the mixed baseline. */
export function workspaceTargets(expertsDir: string, baselinesDir: string): { targetModules?: string[] }[] {
  const mixed = adapterTargets(join(baselinesDir, 'mixed'));
  return [...usableExperts(expertsDir), ...(mixed ? [{ targetModules: mixed }] : [])];
}

/** The experts that load (a broken one is listed by listExperts with its reason, never served). */
export function usableExperts(expertsDir: string): ExpertSummary[] {
  return listExperts(expertsDir).filter((e) => e.status === 'ok');
}

/** Lists experts; a broken one is reported with its reason instead of breaking the list. */
export function listExperts(expertsDir: string): ExpertSummary[] {
  if (!existsSync(expertsDir)) return [];
  const out: ExpertSummary[] = [];
  for (const name of expertFolders(expertsDir)) {
    const dir = join(expertsDir, name);
    try {
      if (!statSync(dir).isDirectory()) continue;
    } catch {
      continue;
    }
    const meta = (readJsonObjectOr(join(dir, 'expert.json')) ?? {}) as ExpertMeta;
    try {
      const cfg = readAdapterConfig(dir);
      const weights = join(dir, 'adapter_model.safetensors');
      const tensors = readSafetensorsHeader(weights);
      checkAdapterTensors(weights, cfg, tensors);
      out.push({ name, dir, status: 'ok', r: cfg.r, alpha: cfg.alpha, targetModules: cfg.targetModules, sizeBytes: statSync(weights).size, parameters: countElements(tensors), meta });
    } catch (e) {
      out.push({ name, dir, status: 'broken', reason: errorMessage(e), meta });
    }
  }
  return out;
}

/** [in, out] features of each LoRA target module of the base model. */
export function moduleDims(base: BaseModelInfo): Record<string, [number, number]> {
  return {
    q_proj: [base.hiddenSize, base.numHeads * base.headDim],
    k_proj: [base.hiddenSize, base.numKvHeads * base.headDim],
    v_proj: [base.hiddenSize, base.numKvHeads * base.headDim],
    o_proj: [base.numHeads * base.headDim, base.hiddenSize],
    gate_proj: [base.hiddenSize, base.intermediateSize],
    up_proj: [base.hiddenSize, base.intermediateSize],
    down_proj: [base.intermediateSize, base.hiddenSize],
  };
}

/** A tensor's values, refusing NaN and infinities: such an expert would only produce garbage. */
function finite(st: SafetensorsFile, key: string): Float32Array {
  const v = tensorToFloat32(st, key);
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i]!)) throw new MoaError(`${st.file}: ${key} holds ${v[i]} at index ${i}: the adapter's weights are not finite`, 'Retrain or re-export the adapter.');
  }
  return v;
}

/** Loads an expert's LoRA matrices, checking every shape against the base model. */
export function loadExpertWeights(dir: string, name: string, base: BaseModelInfo): ExpertWeights {
  const cfg = readAdapterConfig(dir);
  const st = readSafetensors(join(dir, 'adapter_model.safetensors'));
  const layers = checkAdapterTensors(st.file, cfg, st.tensors);
  if (layers > base.numLayers) throw new MoaError(`${st.file}: the adapter has ${layers} layers but the base model ${base.name} has ${base.numLayers}: it was made for another model`);
  const dims = moduleDims(base);

  const modules = new Map<string, ModuleWeights>();
  for (const m of cfg.targetModules) {
    const [inF, outF] = dims[m]!;
    const mw: ModuleWeights = { inFeatures: inF, outFeatures: outF, A: [], B: [] };
    for (let l = 0; l < base.numLayers; l++) {
      const ka = loraKey(l, m, 'A');
      const kb = loraKey(l, m, 'B');
      const ta = st.tensors.get(ka);
      const tb = st.tensors.get(kb);
      if (!ta || !tb) throw new MoaError(`${st.file}: missing ${!ta ? ka : kb} (expected ${base.numLayers} layers of ${m})`);
      if (ta.shape.join() !== `${cfg.r},${inF}`) throw new MoaError(`${st.file}: ${ka} has shape [${ta.shape}] but the base model needs [${cfg.r}, ${inF}]`);
      if (tb.shape.join() !== `${outF},${cfg.r}`) throw new MoaError(`${st.file}: ${kb} has shape [${tb.shape}] but the base model needs [${outF}, ${cfg.r}]`);
      mw.A.push(finite(st, ka));
      mw.B.push(finite(st, kb));
    }
    modules.set(m, mw);
  }
  const scaling = cfg.useRslora ? cfg.alpha / Math.sqrt(cfg.r) : cfg.alpha / cfg.r;
  return { name, r: cfg.r, scaling, modules };
}
