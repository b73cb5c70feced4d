import { SAFE_NAME } from '../names';
import { DEFAULT_BASE_MODEL, SECTIONS, type Field, type Section } from './table';

type Json = Record<string, unknown>;

function fieldSchema(f: Field): Json {
  const words = f.description ? { description: f.description } : {};
  if (f.kind === 'enum') return { enum: [...f.oneOf], default: f.default, ...words };
  if (f.kind === 'strings') return { type: 'array', items: f.oneOf ? { enum: [...f.oneOf] } : { type: 'string', minLength: 1 }, default: [...f.default], ...words };
  return { type: f.kind, minimum: f.min, maximum: f.max, default: f.default, ...words };
}

function sectionSchema(s: Section): Json {
  return { type: 'object', ...(s.description ? { description: s.description } : {}), properties: Object.fromEntries(Object.entries(s.fields).map(([k, f]) => [k, fieldSchema(f)])), additionalProperties: false };
}

const globs = (description: string): Json => ({ type: 'array', items: { type: 'string', minLength: 1 }, description });

/** The JSON Schema VS Code validates `.moa/moa.json` with: written to schemas/moa.schema.json by the build. */
export function configJsonSchema(): Json {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'moa-studio/moa.schema.json',
    $comment: 'Generated from src/core/config/table.ts by the build (scripts/build.mjs): edit the table, not this file.',
    title: 'MoA Studio workspace config (.moa/moa.json)',
    type: 'object',
    required: ['domains'],
    properties: {
      $schema: { type: 'string' },
      version: { const: 1, description: 'Config format version.' },
      baseModel: { type: 'string', minLength: 1, default: DEFAULT_BASE_MODEL, description: 'builtin:moa-tiny; hf:ORG/NAME[@REVISION], a model in the Hugging Face cache (never downloaded); or a Hugging Face model folder (config.json, model.safetensors, tokenizer.json), absolute or relative to the workspace.' },
      domains: {
        type: 'array',
        description: 'One LoRA expert per domain; a file belongs to the first domain that matches it.',
        items: {
          type: 'object',
          required: ['name'],
          anyOf: [{ required: ['include'] }, { required: ['languages'] }],
          properties: {
            name: { type: 'string', pattern: SAFE_NAME.source, description: "Names the expert's folder: lowercase letters, digits, - and _." },
            include: globs('Globs relative to the workspace, e.g. **/*.py'),
            exclude: globs('Globs that take files out of this domain.'),
            languages: globs('VS Code language ids, e.g. python, markdown.'),
          },
          additionalProperties: false,
        },
      },
      ...Object.fromEntries(Object.entries(SECTIONS).map(([name, s]) => [name, sectionSchema(s)])),
    },
    additionalProperties: false,
  };
}
