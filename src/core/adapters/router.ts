import { existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { MoaError, errorMessage } from '../util/errors';
import { readSafetensors, tensorToFloat32 } from './safetensors';
import { readJsonObject } from '../util/json';

export interface RouterInfo {
  status: 'ok' | 'broken';
  reason?: string;
  experts: string[];
  /** Share of each domain's held-out windows routed to its own expert. */
  accuracy: Record<string, number | null>;
  /** domain → expert → share of that domain's held-out windows routed to the expert. */
  confusion: Record<string, Record<string, number> | null>;
  steps?: number;
  topK: number;
  runId?: string;
  created?: string;
}

/** Reads `.moa/router/router.json` and checks the weights beside it; undefined when no router was trained. */
export function readRouterInfo(routerDir: string): RouterInfo | undefined {
  const file = join(routerDir, 'router.json');
  if (!existsSync(file)) return undefined;
  const broken = (reason: string): RouterInfo => ({ status: 'broken', reason, experts: [], accuracy: {}, confusion: {}, topK: 1 });
  let j: Record<string, unknown>;
  try {
    j = readJsonObject(file);
  } catch (e) {
    return broken(errorMessage(e));
  }
  const weights = join(routerDir, typeof j['weights'] === 'string' ? (j['weights'] as string) : 'router.safetensors');
  if (!existsSync(weights)) return broken(`${weights}: missing`);
  if (typeof j['weights_sha256'] === 'string' && createHash('sha256').update(readFileSync(weights)).digest('hex') !== j['weights_sha256']) {
    return broken(`${weights}: does not match the checksum in router.json (written by a different run?)`);
  }
  const experts = Array.isArray(j['experts']) ? (j['experts'] as unknown[]).filter((x): x is string => typeof x === 'string') : [];
  const acc = typeof j['accuracy'] === 'object' && j['accuracy'] !== null ? (j['accuracy'] as Record<string, number | null>) : {};
  return {
    status: 'ok',
    experts,
    accuracy: acc,
    confusion: typeof j['confusion'] === 'object' && j['confusion'] !== null ? (j['confusion'] as RouterInfo['confusion']) : {},
    steps: typeof j['steps'] === 'number' ? (j['steps'] as number) : undefined,
    topK: typeof j['top_k'] === 'number' && Number.isInteger(j['top_k']) ? (j['top_k'] as number) : 1,
    runId: typeof j['run_id'] === 'string' ? (j['run_id'] as string) : undefined,
    created: typeof j['created'] === 'string' ? (j['created'] as string) : undefined,
  };
}

export interface RouterWeights {
  experts: string[];
  /** [layers, experts, hidden] and [layers, experts], stacked from router.layers.{i}.*. */
  weight: Float32Array;
  bias: Float32Array;
  layers: number;
  hidden: number;
}

/** The per-layer router matrices, checked against the base model's shape. */
export function loadRouterWeights(routerDir: string, info: RouterInfo, layers: number, hidden: number): RouterWeights {
  if (info.status !== 'ok') throw new MoaError(info.reason ?? `${routerDir}: the router is broken`);
  const st = readSafetensors(join(routerDir, 'router.safetensors'));
  const E = info.experts.length;
  const weight = new Float32Array(layers * E * hidden);
  const bias = new Float32Array(layers * E);
  for (let l = 0; l < layers; l++) {
    const w = `router.layers.${l}.weight`;
    const b = `router.layers.${l}.bias`;
    const tw = st.tensors.get(w);
    const tb = st.tensors.get(b);
    if (!tw || tw.shape.join() !== `${E},${hidden}`) throw new MoaError(`${st.file}: ${w} must be [${E}, ${hidden}] (experts × hidden of the base model)`);
    if (!tb || tb.shape.join() !== `${E}`) throw new MoaError(`${st.file}: ${b} must be [${E}]`);
    weight.set(tensorToFloat32(st, w), l * E * hidden);
    bias.set(tensorToFloat32(st, b), l * E);
  }
  return { experts: info.experts, weight, bias, layers, hidden };
}

/** Mean of the per-domain accuracies that were measured. */
export function meanAccuracy(info: RouterInfo): number | undefined {
  const xs = Object.values(info.accuracy).filter((x): x is number => typeof x === 'number');
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : undefined;
}
