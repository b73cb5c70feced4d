import schema from '../../../schemas/trainer-events.schema.json';
import { isObject } from '../util/json';

/**
 * The trainer's events as schemas/trainer-events.schema.json declares them: the one contract the
 * TypeScript parser and the Python trainer's tests are both held to. A validator for the subset of
 * JSON Schema that file uses (type, const, enum, required, properties, additionalProperties, items).
 */
export interface FieldSchema {
  type?: string | string[];
  const?: unknown;
  enum?: unknown[];
  required?: string[];
  properties?: Record<string, FieldSchema>;
  additionalProperties?: boolean | FieldSchema;
  items?: FieldSchema;
}

// The JSON file's literal type is wider than FieldSchema (strings, not unions); it is checked at
// load by the contract test, which validates the real trainer's events with it.
const defs = (schema as unknown as { $defs: Record<string, FieldSchema> }).$defs;

export const EVENT_TYPES: readonly string[] = (schema as unknown as { properties: { type: { enum: string[] } } }).properties.type.enum;

const TYPES: Record<string, (v: unknown) => boolean> = {
  string: (v) => typeof v === 'string',
  number: (v) => typeof v === 'number',
  integer: (v) => typeof v === 'number' && Number.isInteger(v),
  boolean: (v) => typeof v === 'boolean',
  null: (v) => v === null,
  array: Array.isArray,
  object: isObject,
};

export function typeMatches(value: unknown, type: FieldSchema['type']): boolean {
  if (type === undefined) return true;
  return (Array.isArray(type) ? type : [type]).some((t) => TYPES[t]?.(value));
}

function check(value: unknown, s: FieldSchema, where: string, out: string[]): void {
  if ('const' in s && value !== s.const) return void out.push(`${where}: ${JSON.stringify(value)}, expected ${JSON.stringify(s.const)}`);
  if (s.enum && !s.enum.includes(value)) return void out.push(`${where}: ${JSON.stringify(value)} is not one of ${s.enum.join(', ')}`);
  if (!typeMatches(value, s.type)) return void out.push(`${where}: ${JSON.stringify(value)?.slice(0, 60)}, expected ${[s.type].flat().join(' or ')}`);
  if (isObject(value)) {
    for (const key of s.required ?? []) if (!(key in value)) out.push(`${where}: missing required field "${key}"`);
    for (const [key, v] of Object.entries(value)) {
      const p = s.properties?.[key];
      if (p) check(v, p, `${where}.${key}`, out);
      else if (s.additionalProperties === false) out.push(`${where}: field "${key}" is not declared in trainer-events.schema.json`);
      else if (typeof s.additionalProperties === 'object') check(v, s.additionalProperties, `${where}.${key}`, out);
    }
  }
  if (Array.isArray(value) && s.items) value.forEach((v, i) => check(v, s.items!, `${where}[${i}]`, out));
}

/** Every way `value` breaks the event contract; empty when it keeps it. */
export function eventContractProblems(value: unknown): string[] {
  const type = (value as { type?: unknown } | null)?.type;
  if (typeof type !== 'string' || !defs[type]) return [`not an event of a declared type: ${JSON.stringify(value)?.slice(0, 120)}`];
  const out: string[] = [];
  check(value, defs[type]!, type, out);
  return out;
}

/** An event type's required fields and their declared types: what the parser insists on. */
export function requiredFields(type: string): [string, FieldSchema['type']][] {
  const d = defs[type];
  return (d?.required ?? []).filter((f) => f !== 'v' && f !== 'type').map((f) => [f, d!.properties?.[f]?.type]);
}
