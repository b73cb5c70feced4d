import { existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { Tokenizer as HfTokenizerImpl } from '@huggingface/tokenizers';
import { MoaError, errorMessage } from '../util/errors';
import { isObject, readJsonObject } from '../util/json';
import { ByteTokenizer } from './bytes';
import { HfTokenizer } from './hf';
import type { Tokenizer } from './types';

/** Optional files of a model folder: absent is fine, present but broken is an error. */
function readOptional(file: string): Record<string, unknown> | undefined {
  return existsSync(file) ? readJsonObject(file) : undefined;
}

/** A special token's id: from config.json's *_token_id, else the token named in tokenizer_config.json. */
function specialId(modelConfig: Record<string, unknown> | undefined, tokConfig: Record<string, unknown> | undefined, key: 'bos' | 'eos', lookup: (t: string) => number | undefined): number | null {
  const id = modelConfig?.[`${key}_token_id`];
  if (typeof id === 'number' && Number.isInteger(id)) return id;
  if (Array.isArray(id) && typeof id[0] === 'number') return id[0];
  const named = tokConfig?.[`${key}_token`];
  const content = typeof named === 'string' ? named : isObject(named) && typeof named['content'] === 'string' ? named['content'] : undefined;
  return content !== undefined ? (lookup(content) ?? null) : null;
}

/** Loads `tokenizer.json` from a model folder: the built-in byte-level one or a Hugging Face BPE. */
export function loadTokenizer(modelDir: string): Tokenizer {
  const file = join(modelDir, 'tokenizer.json');
  const raw = readJsonObject(file, 'A base model folder needs tokenizer.json.');
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
  if (kind !== 'BPE') {
    throw new MoaError(`${file}: tokenizer model "${kind}" is not supported (byte-level BPE tokenizers, as Llama 3, Qwen2 and GPT-2 use, and the built-in byte tokenizer are)`);
  }
  const tokConfig = readOptional(join(modelDir, 'tokenizer_config.json'));
  const modelConfig = readOptional(join(modelDir, 'config.json'));
  let impl: HfTokenizerImpl;
  try {
    impl = new HfTokenizerImpl(raw, tokConfig ?? {});
  } catch (e) {
    throw new MoaError(`${file}: could not build the tokenizer (${errorMessage(e)})`);
  }
  const lookup = (t: string) => impl.token_to_id(t);
  const eos = specialId(modelConfig, tokConfig, 'eos', lookup);
  if (eos === null) throw new MoaError(`${file}: no end-of-sequence token (set eos_token_id in config.json or eos_token in tokenizer_config.json)`);
  const vocab = isObject(model) && isObject(model['vocab']) ? Object.keys(model['vocab']).length : 0;
  const added = Array.isArray(raw['added_tokens']) ? raw['added_tokens'].length : 0;
  const fingerprint = createHash('sha256').update(readFileSync(file)).digest('hex').slice(0, 16);
  return new HfTokenizer(impl, fingerprint, vocab + added, specialId(modelConfig, tokConfig, 'bos', lookup), eos);
}
