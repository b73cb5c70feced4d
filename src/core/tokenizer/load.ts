import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MoaError } from '../util/errors';
import { ByteTokenizer } from './bytes';
import type { Tokenizer } from './types';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Loads `tokenizer.json` from a model folder. */
export function loadTokenizer(modelDir: string): Tokenizer {
  const file = join(modelDir, 'tokenizer.json');
  if (!existsSync(file)) throw new MoaError(`${file}: missing (a base model folder needs tokenizer.json)`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new MoaError(`${file}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (!isObject(raw)) throw new MoaError(`${file}: expected a JSON object`);
  const moa = raw['moa'];
  if (isObject(moa) && moa['type'] === 'bytes') {
    const int = (k: string, d: number): number => {
      const v = moa[k];
      if (v === undefined) return d;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new MoaError(`${file}: moa.${k} must be a non-negative integer`);
      return v;
    };
    return new ByteTokenizer(int('bos_token_id', 256), int('eos_token_id', 257), int('vocab_size', 258));
  }
  const model = raw['model'];
  const kind = isObject(model) && typeof model['type'] === 'string' ? model['type'] : 'unknown';
  throw new MoaError(
    `${file}: tokenizer type "${kind}" is not supported yet (only the built-in byte-level tokenizer)`,
    'Hugging Face BPE tokenizers are planned; use builtin:moa-tiny for now.',
  );
}
