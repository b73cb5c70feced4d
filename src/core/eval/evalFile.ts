import type { EvalReport } from './evaluate';
import type { EmbeddedReport } from './embedded';
import type { CompletionReport } from './completions';
import type { EditorContextReport } from './editorContext';
import { MoaError } from '../util/errors';
import { isObject, readJsonObject } from '../util/json';

const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
const isPerDomain = (v: unknown): boolean => isObject(v) && Object.values(v).every((x) => x === null || typeof x === 'number');

function isEmbedded(v: unknown): v is EmbeddedReport {
  if (!isObject(v) || typeof v['prose'] !== 'string' || !isObject(v['shape']) || !Array.isArray(v['rows'])) return false;
  return v['rows'].every((r: unknown) => isObject(r) && typeof r['domain'] === 'string' && typeof r['samples'] === 'number' && isPerDomain(r['loss']) && isPerDomain(r['servedByBlockExpert']));
}

function isCompletions(v: unknown): v is CompletionReport {
  if (!isObject(v) || !Array.isArray(v['columns']) || !isObject(v['rows'])) return false;
  return Object.values(v['rows']).every((row) => isObject(row) && Object.values(row).every((s) => isPerDomain(s)));
}

function isEditorContext(v: unknown): v is EditorContextReport {
  return isObject(v) && typeof v['contextTokens'] === 'number' && ['meanContext', 'label', 'learned', 'accuracy'].every((k) => isPerDomain(v[k]) && !Object.values(v[k] as object).includes(null))
    && Object.keys(v['label'] as object).every((d) => ['meanContext', 'learned', 'accuracy'].every((k) => typeof (v[k] as Record<string, unknown>)[d] === 'number'));
}

/** A `moa eval` report (.moa/eval.json or a run's eval.json), checked field by field. */
export function readEvalReport(file: string): EvalReport {
  const j = readJsonObject(file, 'Run "moa eval".');
  const bad = (what: string) => new MoaError(`${file}: not a moa eval report (${what})`, 'Run "moa eval" again to rewrite it.');
  if (j['v'] !== 1) throw bad(`version ${JSON.stringify(j['v'])}, expected 1`);
  for (const f of ['windows', 'seqLen']) if (typeof j[f] !== 'number') throw bad(`"${f}" must be a number`);
  for (const f of ['domains', 'experts']) if (!isStringArray(j[f])) throw bad(`"${f}" must be a list of names`);
  for (const f of ['base', 'label']) if (!isPerDomain(j[f])) throw bad(`"${f}" must map domains to losses`);
  for (const f of ['mixed', 'learned', 'routerAccuracy']) if (j[f] !== null && j[f] !== undefined && !isPerDomain(j[f])) throw bad(`"${f}" must map domains to numbers, or be null`);
  const matrix = j['matrix'];
  if (!isObject(matrix) || !Object.values(matrix).every(isPerDomain)) throw bad('"matrix" must map domain → expert → loss');
  return {
    v: 1,
    created: typeof j['created'] === 'string' ? j['created'] : '',
    windows: j['windows'] as number,
    seqLen: j['seqLen'] as number,
    domains: j['domains'] as string[],
    experts: j['experts'] as string[],
    base: j['base'] as EvalReport['base'],
    matrix: matrix as EvalReport['matrix'],
    mixed: (j['mixed'] ?? null) as EvalReport['mixed'],
    label: j['label'] as EvalReport['label'],
    learned: (j['learned'] ?? null) as EvalReport['learned'],
    ...(j['learnedSource'] === 'onnx' || j['learnedSource'] === 'trainer' ? { learnedSource: j['learnedSource'] } : {}),
    routerAccuracy: (j['routerAccuracy'] ?? null) as EvalReport['routerAccuracy'],
    // Optional (written since the held-out rework); anything malformed is dropped, never trusted.
    ...(isObject(j['windowsPerDomain']) && Object.values(j['windowsPerDomain']).every((x) => typeof x === 'number') ? { windowsPerDomain: j['windowsPerDomain'] as Record<string, number> } : {}),
    ...(isObject(j['stderr']) && Object.values(j['stderr']).every(isPerDomain) ? { stderr: j['stderr'] as EvalReport['stderr'] } : {}),
    ...(isPerDomain(j['tooLittleHeldOut']) ? { tooLittleHeldOut: j['tooLittleHeldOut'] as Record<string, number> } : {}),
    ...(isEmbedded(j['embedded']) ? { embedded: j['embedded'] } : {}),
    ...(isCompletions(j['completions']) ? { completions: j['completions'] } : {}),
    ...(isEditorContext(j['editorContext']) ? { editorContext: j['editorContext'] } : {}),
  };
}
