import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { MoaError, errorMessage } from '../util/errors';
import { readSafetensors, tensorToFloat32 } from './safetensors';
import { isObject, readJsonObject } from '../util/json';
import { MAX_BUFFER_BYTES, pathInside, readFileBounded } from '../util/fsRead';
import { recoverPublished } from '../util/atomic';
import { NGRAM_HASH, NGRAM_ORDERS, type NgramTable } from '../routing/ngram';

export interface RouterInfo {
  status: 'ok' | 'broken';
  reason?: string;
  experts: string[];
  /** Share of each domain's held-out windows routed to its own expert. */
  accuracy: Record<string, number | null>;
  /** domain → expert → share of that domain's held-out windows routed to the expert. */
  confusion: Record<string, Record<string, number> | null>;
  steps?: number;
  /** The weights file router.json names, resolved inside the router's folder. */
  weightsFile?: string;
  runId?: string;
  created?: string;
  /** The decision's n-gram table's bucket count (routing/ngram.ts); set when the status is ok. */
  ngramBuckets?: number;
}

const numberOrNull = (v: unknown): v is number | null => v === null || (typeof v === 'number' && Number.isFinite(v));

/** A JSON object of numbers (or nulls) per key; anything else is dropped rather than trusted. */
function numberRecord(v: unknown): Record<string, number | null> {
  if (!isObject(v)) return {};
  return Object.fromEntries(Object.entries(v).filter(([, x]) => numberOrNull(x))) as Record<string, number | null>;
}

/** Reads `.moa/router/router.json` and checks the weights beside it; undefined when no router was trained. */
export function readRouterInfo(routerDir: string): RouterInfo | undefined {
  recoverPublished(routerDir);
  const file = join(routerDir, 'router.json');
  if (!existsSync(file)) return undefined;
  let j: Record<string, unknown>;
  try {
    j = readJsonObject(file);
  } catch (e) {
    return brokenRouter(errorMessage(e));
  }
  return routerInfoFrom(file, j, routerDir, (weights) => createHash('sha256').update(readFileBounded(weights, MAX_BUFFER_BYTES, 'router weights')).digest('hex'));
}

function brokenRouter(reason: string): RouterInfo {
  return { status: 'broken', reason, experts: [], accuracy: {}, confusion: {} };
}

/**
 * The rules of `readRouterInfo` on a parsed router.json (pure but for `hashOf`): the weights path
 * must stay inside the router's folder, and every field is type-checked, never trusted.
 */
export function routerInfoFrom(file: string, j: Record<string, unknown>, routerDir: string, hashOf: (weights: string) => string): RouterInfo {
  let weights: string;
  try {
    weights = pathInside(routerDir, j['weights'] === undefined ? 'router.safetensors' : (j['weights'] as string), file);
    if (!existsSync(weights)) return brokenRouter(`${weights}: missing`);
    if (typeof j['weights_sha256'] === 'string' && hashOf(weights) !== j['weights_sha256']) {
      return brokenRouter(`${weights}: does not match the checksum in router.json (written by a different run?)`);
    }
  } catch (e) {
    return brokenRouter(errorMessage(e));
  }
  const experts = Array.isArray(j['experts']) ? (j['experts'] as unknown[]).filter((x): x is string => typeof x === 'string') : [];
  const confusion = isObject(j['confusion'])
    ? Object.fromEntries(Object.entries(j['confusion']).map(([k, row]) => [k, isObject(row) ? (numberRecord(row) as Record<string, number>) : null]))
    : {};
  if (j['decision'] === undefined) {
    // Written before the n-gram decision: only its per-layer routers decide, which nothing serves now.
    return brokenRouter(`${file}: written by an older trainer, without the n-gram decision; run "moa train --stages router" to refit it (seconds)`);
  }
  if (j['decision'] !== 'ngram') return brokenRouter(`${file}: unknown decision ${JSON.stringify(j['decision'])}`);
  const ng = isObject(j['ngram']) ? j['ngram'] : {};
  const buckets = ng['buckets'];
  if (ng['hash'] !== NGRAM_HASH || JSON.stringify(ng['orders']) !== JSON.stringify(NGRAM_ORDERS)) {
    return brokenRouter(`${file}: ngram must have hash ${NGRAM_HASH} and orders ${NGRAM_ORDERS.join(', ')} (written by a newer trainer?)`);
  }
  if (typeof buckets !== 'number' || !Number.isInteger(buckets) || buckets < 1 || buckets > 1 << 24 || (buckets & (buckets - 1)) !== 0) {
    return brokenRouter(`${file}: ngram.buckets must be a power of two up to 2^24`);
  }
  return {
    status: 'ok',
    experts,
    accuracy: numberRecord(j['accuracy']),
    confusion,
    steps: typeof j['steps'] === 'number' && Number.isFinite(j['steps']) ? (j['steps'] as number) : undefined,
    runId: typeof j['run_id'] === 'string' ? (j['run_id'] as string) : undefined,
    created: typeof j['created'] === 'string' ? (j['created'] as string) : undefined,
    weightsFile: weights,
    ngramBuckets: buckets,
  };
}

/** The learned router as completions use it: its experts in weight-row order and its n-gram table. */
export interface LearnedRouter {
  experts: string[];
  table: NgramTable;
}

/** The decision's table from router.safetensors, checked against router.json. */
export function loadLearnedRouter(routerDir: string, info: RouterInfo): LearnedRouter {
  if (info.status !== 'ok' || info.ngramBuckets === undefined) throw new MoaError(info.reason ?? `${routerDir}: the router is broken`);
  const st = readSafetensors(info.weightsFile ?? join(routerDir, 'router.safetensors'));
  const E = info.experts.length;
  const tw = st.tensors.get('ngram.weight');
  const tb = st.tensors.get('ngram.bias');
  if (!tw || tw.shape.join() !== `${info.ngramBuckets},${E}`) throw new MoaError(`${st.file}: ngram.weight must be [${info.ngramBuckets}, ${E}] (buckets × experts)`);
  if (!tb || tb.shape.join() !== `${E}`) throw new MoaError(`${st.file}: ngram.bias must be [${E}]`);
  return { experts: info.experts, table: { buckets: info.ngramBuckets, experts: E, weight: tensorToFloat32(st, 'ngram.weight'), bias: tensorToFloat32(st, 'ngram.bias') } };
}

/** Mean of the per-domain accuracies that were measured. */
export function meanAccuracy(info: RouterInfo): number | undefined {
  const xs = Object.values(info.accuracy).filter((x): x is number => typeof x === 'number');
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : undefined;
}
