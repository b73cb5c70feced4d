import { existsSync, statSync } from 'node:fs';
import { readFileBounded } from '../util/fsRead';
import { MAX_JSON_BYTES } from '../util/json';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { ATTENTION_MODULES } from '../config/schema';
import type { WeightType } from '../config/schema';
import type { ProductLayout, WorkspaceLayout } from '../paths';
import { MoaError, throwIfCancelled } from '../util/errors';
import { removeStaleTemps, writeJsonAtomic } from '../util/atomic';
import { describeFailure, spawnTrainer } from '../trainer/process';

/** Bumped whenever the exported graph changes shape or inputs, so old caches are not reused. */
export const EXPORT_FORMAT = 6; // 3: written node by node with onnxruntime kernels; 4: + optional logits_to_keep; 5: top-1 learned routing gathers one expert per row; 6: model.json says kv_in_place

export interface OnnxExport {
  dir: string;
  onnxPath: string;
  infoPath: string;
}

/** The export depends only on the base weights, the graph format and these: experts and routing weights are inputs. */
export interface ExportVariant {
  /**
   * The projections the graph takes LoRA inputs for (default: attention's four). An expert that
   * targets more needs a graph with them: `graphTargets` gives the set for a group of experts.
   */
  targets?: readonly string[];
  /** The base's weights in the graph: float, or int8 / int4 blocks (MatMulNBits); experts stay float. */
  weights?: WeightType;
}

export type { WeightType };

const PROJECTION_ORDER = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

/** Attention's projections and every projection the experts target, in one canonical order. */
export function graphTargets(experts: { targetModules?: readonly string[] }[]): string[] {
  const wanted = new Set<string>([...ATTENTION_MODULES, ...experts.flatMap((e) => e.targetModules ?? [])]);
  return PROJECTION_ORDER.filter((m) => wanted.has(m));
}

const targetsOf = (variant: ExportVariant) => graphTargets([{ targetModules: variant.targets ?? [] }]);

export function exportKey(baseModelDir: string, variant: ExportVariant = {}): string {
  // Attention's four alone keep the key caches from before MLP targets existed.
  const h = createHash('sha256').update(`format-${EXPORT_FORMAT}\0${targetsOf(variant).join(',')}\0`);
  if (variant.weights && variant.weights !== 'f32') h.update(`weights-${variant.weights}\0`);
  h.update(readFileBounded(join(baseModelDir, 'config.json'), MAX_JSON_BYTES, 'config.json'));
  const weights = join(baseModelDir, 'model.safetensors');
  if (existsSync(weights)) {
    const st = statSync(weights);
    h.update(`\0${st.size}\0${st.mtimeMs}`);
  }
  return h.digest('hex').slice(0, 16);
}

export function onnxExportFor(layout: WorkspaceLayout, baseModelDir: string, variant: ExportVariant = {}): OnnxExport {
  const dir = join(layout.onnxDir, exportKey(baseModelDir, variant));
  return { dir, onnxPath: join(dir, 'model.onnx'), infoPath: join(dir, 'model.json') };
}

/** Returns the cached export, running `moa_trainer export` once when it is missing. */
export async function ensureOnnxExport(
  layout: WorkspaceLayout,
  product: ProductLayout,
  baseModelDir: string,
  python: string | (() => Promise<string>),
  onLog?: (line: string) => void,
  variant: ExportVariant = {},
  signal?: AbortSignal,
): Promise<OnnxExport> {
  const exp = onnxExportFor(layout, baseModelDir, variant);
  if (existsSync(exp.onnxPath) && existsSync(exp.infoPath)) return exp;
  // Only a missing export needs Python, so only then is the interpreter looked up.
  const interpreter = typeof python === 'string' ? python : await python();
  removeStaleTemps(exp.dir); // what a killed export left
  const configPath = join(exp.dir, 'export-config.json');
  writeJsonAtomic(configPath, {
    v: 1,
    base_model: baseModelDir,
    out: exp.onnxPath,
    target_modules: targetsOf(variant),
    opset: 17,
    ...(variant.weights && variant.weights !== 'f32' ? { weights: variant.weights } : {}),
  });
  const proc = spawnTrainer({
    python: interpreter,
    trainerDir: product.trainerDir,
    command: 'export',
    configPath,
    onNoise: onLog,
    onStderr: (t) => onLog?.(t.trimEnd()),
  });
  const onAbort = () => proc.stop();
  signal?.addEventListener('abort', onAbort, { once: true });
  const exit = await proc.exited;
  signal?.removeEventListener('abort', onAbort);
  throwIfCancelled(signal, 'ONNX export');
  if (!exit.done || !existsSync(exp.onnxPath)) throw new MoaError(`ONNX export of ${baseModelDir} failed: ${describeFailure(exit)}`);
  return exp;
}
