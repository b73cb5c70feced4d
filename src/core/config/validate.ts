import { SAFE_NAME } from '../names';
import { isObject } from '../util/json';
import { KNOWN_LANGUAGES, nearest } from '../domains/languages';
import type { DomainConfig, MoaConfig } from './schema';
import { DEFAULT_BASE_MODEL, SECTIONS, type ConfigSections, type Field, type Section } from './table';

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

/** Reads the fields a section knows, collecting problems with their JSON path instead of throwing. */
class Reader {
  readonly errors: ConfigProblem[] = [];
  readonly warnings: ConfigProblem[] = [];

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

  /** One field of the table: its value, or its default with the problem noted. */
  field(obj: Json, key: string, path: string, f: Field): unknown {
    if (f.kind === 'enum') {
      const v = this.string(obj, key, path, f.default);
      if (f.oneOf.includes(v)) return v;
      this.errors.push({ path: `${path}.${key}`, message: `expected one of ${f.oneOf.join(', ')}, got "${v}"` });
      return f.default;
    }
    if (f.kind === 'strings') {
      const v = this.strings(obj, key, path, [...f.default]);
      const bad = f.oneOf ? v.filter((x) => !f.oneOf!.includes(x)) : [];
      if (!bad.length) return v;
      this.errors.push({ path: `${path}.${key}`, message: `${bad.map((b) => `"${b}"`).join(', ')}: expected some of ${f.oneOf!.join(', ')}` });
      return [...f.default];
    }
    return this.number(obj, key, path, f.default, f.min, f.max, f.kind === 'integer');
  }
}

function readSection(r: Reader, raw: unknown, path: string, s: Section): Record<string, unknown> {
  const obj = r.section(raw, path, Object.keys(s.fields));
  return Object.fromEntries(Object.entries(s.fields).map(([k, f]) => [k, r.field(obj, k, path, f)]));
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
  const r = new Reader();
  const { errors, warnings } = r;
  if (!isObject(raw)) return { errors: [{ path: '$', message: 'expected a JSON object' }], warnings };
  const top = r.section(raw, '$', ['$schema', 'version', 'baseModel', 'domains', ...Object.keys(SECTIONS)]);
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
  const sections = Object.fromEntries(Object.entries(SECTIONS).map(([name, sec]) => [name, readSection(r, top[name], `$.${name}`, sec)])) as ConfigSections;
  const config: MoaConfig = {
    version: 1,
    baseModel: r.string(top, 'baseModel', '$', DEFAULT_BASE_MODEL),
    domains,
    ...sections,
  };
  return errors.length ? { errors, warnings } : { config, errors, warnings };
}

export function formatProblems(file: string, problems: ConfigProblem[]): string {
  return problems.map((p) => `${file}: ${p.path}: ${p.message}`).join('\n');
}
