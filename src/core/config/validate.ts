import { SAFE_NAME } from '../names';
import { KNOWN_LANGUAGES, nearest } from '../domains/languages';
import {
  DEFAULT_BASE_MODEL,
  ROUTING_MODES,
  defaultData,
  defaultRouter,
  defaultLora,
  defaultTraining,
  type DomainConfig,
  type MoaConfig,
  type RoutingMode,
} from './schema';

export interface ConfigProblem {
  path: string;
  message: string;
}

export interface ValidationResult {
  config?: MoaConfig;
  errors: ConfigProblem[];
  warnings: ConfigProblem[];
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads the fields a section knows, collecting problems with their JSON path instead of throwing. */
class Reader {
  constructor(
    readonly errors: ConfigProblem[],
    readonly warnings: ConfigProblem[],
  ) {}

  section(obj: unknown, path: string, known: string[]): Json {
    if (obj === undefined) return {};
    if (!isObject(obj)) {
      this.errors.push({ path, message: 'expected an object' });
      return {};
    }
    for (const key of Object.keys(obj)) {
      if (!known.includes(key)) this.warnings.push({ path: `${path}.${key}`, message: 'unknown key (ignored)' });
    }
    return obj;
  }

  number(obj: Json, key: string, path: string, fallback: number, min: number, max: number, integer = false): number {
    const v = obj[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
      const kind = integer ? 'an integer' : 'a number';
      this.errors.push({ path: `${path}.${key}`, message: `expected ${kind} from ${min} to ${max}, got ${JSON.stringify(v)}` });
      return fallback;
    }
    return v;
  }

  string(obj: Json, key: string, path: string, fallback: string): string {
    const v = obj[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'string' || v.length === 0) {
      this.errors.push({ path: `${path}.${key}`, message: `expected a non-empty string, got ${JSON.stringify(v)}` });
      return fallback;
    }
    return v;
  }

  strings(obj: Json, key: string, path: string, fallback: string[]): string[] {
    const v = obj[key];
    if (v === undefined) return fallback;
    if (!Array.isArray(v) || v.some((s) => typeof s !== 'string' || s.length === 0)) {
      this.errors.push({ path: `${path}.${key}`, message: 'expected an array of non-empty strings' });
      return fallback;
    }
    return v as string[];
  }
}


function readDomain(r: Reader, raw: unknown, path: string): DomainConfig | undefined {
  const obj = r.section(raw, path, ['name', 'include', 'exclude', 'languages']);
  if (!isObject(raw)) return undefined;
  const name = r.string(obj, 'name', path, '');
  if (!name) {
    if (obj['name'] === undefined) r.errors.push({ path: `${path}.name`, message: 'missing (every domain needs a name)' });
    return undefined;
  }
  if (!SAFE_NAME.test(name)) {
    r.errors.push({ path: `${path}.name`, message: `"${name}" must be lowercase letters, digits, "-" or "_" (it names a folder)` });
    return undefined;
  }
  const include = r.strings(obj, 'include', path, []);
  const languages = r.strings(obj, 'languages', path, []);
  if (include.length === 0 && languages.length === 0) {
    r.errors.push({ path, message: `domain "${name}" matches no file: give "include" globs or "languages"` });
  }
  languages.forEach((lang, i) => {
    if (KNOWN_LANGUAGES.has(lang)) return;
    const near = nearest(lang, KNOWN_LANGUAGES);
    r.warnings.push({ path: `${path}.languages[${i}]`, message: `"${lang}" is not a language id MoA knows${near ? `; did you mean "${near}"?` : ' (VS Code language ids: python, typescript, markdown, sql, …)'}` });
  });
  return { name, include, exclude: r.strings(obj, 'exclude', path, []), languages };
}

/** Validates parsed JSON as a MoA config; fills defaults; never throws. */
export function validateConfig(raw: unknown): ValidationResult {
  const errors: ConfigProblem[] = [];
  const warnings: ConfigProblem[] = [];
  const r = new Reader(errors, warnings);
  if (!isObject(raw)) return { errors: [{ path: '$', message: 'expected a JSON object' }], warnings };
  const top = r.section(raw, '$', ['$schema', 'version', 'baseModel', 'domains', 'lora', 'training', 'data', 'router', 'routing']);
  if (top['version'] !== undefined && top['version'] !== 1) {
    errors.push({ path: '$.version', message: `unsupported version ${JSON.stringify(top['version'])} (this MoA Studio reads version 1)` });
  }
  const domains: DomainConfig[] = [];
  if (!Array.isArray(top['domains'])) {
    errors.push({ path: '$.domains', message: 'expected an array of domains' });
  } else {
    top['domains'].forEach((d, i) => {
      const domain = readDomain(r, d, `$.domains[${i}]`);
      if (!domain) return;
      if (domains.some((x) => x.name === domain.name)) {
        errors.push({ path: `$.domains[${i}].name`, message: `duplicate domain name "${domain.name}"` });
      } else domains.push(domain);
    });
  }
  const l = r.section(top['lora'], '$.lora', ['r', 'alpha', 'dropout', 'targetModules']);
  const dl = defaultLora();
  const lora = {
    r: r.number(l, 'r', '$.lora', dl.r, 1, 1024, true),
    alpha: r.number(l, 'alpha', '$.lora', dl.alpha, 0, 1e6),
    dropout: r.number(l, 'dropout', '$.lora', dl.dropout, 0, 0.99),
    targetModules: r.strings(l, 'targetModules', '$.lora', dl.targetModules),
  };
  const t = r.section(top['training'], '$.training', ['steps', 'batchSize', 'seqLen', 'lr', 'warmupSteps', 'seed', 'minutes', 'maxEpochs', 'patience', 'evalWindows', 'fimRate']);
  const dt = defaultTraining();
  const training = {
    steps: r.number(t, 'steps', '$.training', dt.steps, 1, 1e9, true),
    batchSize: r.number(t, 'batchSize', '$.training', dt.batchSize, 1, 4096, true),
    seqLen: r.number(t, 'seqLen', '$.training', dt.seqLen, 8, 1 << 20, true),
    lr: r.number(t, 'lr', '$.training', dt.lr, 0, 10),
    warmupSteps: r.number(t, 'warmupSteps', '$.training', dt.warmupSteps, 0, 1e9, true),
    seed: r.number(t, 'seed', '$.training', dt.seed, 0, 2 ** 31 - 1, true),
    minutes: r.number(t, 'minutes', '$.training', dt.minutes, 0, 60 * 24 * 30),
    maxEpochs: r.number(t, 'maxEpochs', '$.training', dt.maxEpochs, 0, 1e6),
    patience: r.number(t, 'patience', '$.training', dt.patience, 0, 1e6, true),
    evalWindows: r.number(t, 'evalWindows', '$.training', dt.evalWindows, 1, 4096, true),
    fimRate: r.number(t, 'fimRate', '$.training', dt.fimRate, 0, 1),
  };
  const d = r.section(top['data'], '$.data', ['maxFileBytes', 'valFraction']);
  const dd = defaultData();
  const data = {
    maxFileBytes: r.number(d, 'maxFileBytes', '$.data', dd.maxFileBytes, 1, 1 << 30, true),
    valFraction: r.number(d, 'valFraction', '$.data', dd.valFraction, 0, 0.9),
  };
  const rt = r.section(top['router'], '$.router', ['steps', 'eta', 'expertLrMult', 'topK']);
  const dr = defaultRouter();
  const router = {
    steps: r.number(rt, 'steps', '$.router', dr.steps, 1, 1e9, true),
    eta: r.number(rt, 'eta', '$.router', dr.eta, 0, 1e3),
    expertLrMult: r.number(rt, 'expertLrMult', '$.router', dr.expertLrMult, 0, 10),
    topK: r.number(rt, 'topK', '$.router', dr.topK, 1, 64, true),
  };
  const ro = r.section(top['routing'], '$.routing', ['mode']);
  const mode = r.string(ro, 'mode', '$.routing', 'label');
  if (!ROUTING_MODES.includes(mode as RoutingMode)) {
    errors.push({ path: '$.routing.mode', message: `expected one of ${ROUTING_MODES.join(', ')}, got "${mode}"` });
  }
  const config: MoaConfig = {
    version: 1,
    baseModel: r.string(top, 'baseModel', '$', DEFAULT_BASE_MODEL),
    domains,
    lora,
    training,
    data,
    router,
    routing: { mode: ROUTING_MODES.includes(mode as RoutingMode) ? (mode as RoutingMode) : 'label' },
  };
  return errors.length ? { errors, warnings } : { config, errors, warnings };
}

export function formatProblems(file: string, problems: ConfigProblem[]): string {
  return problems.map((p) => `${file}: ${p.path}: ${p.message}`).join('\n');
}
