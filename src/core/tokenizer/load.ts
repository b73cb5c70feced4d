import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { Tokenizer as HfTokenizerImpl } from '@huggingface/tokenizers';
import { MoaError, errorMessage } from '../util/errors';
import { readFileBounded } from '../util/fsRead';
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

/** Real tokenizer.json files reach ~20 MB (large vocabularies with merges); 64 MiB leaves room. */
const MAX_TOKENIZER_BYTES = 64 * 1024 * 1024;

/** Loads `tokenizer.json` from a model folder: the built-in byte-level one or a Hugging Face BPE. */
export function loadTokenizer(modelDir: string): Tokenizer {
  const file = join(modelDir, 'tokenizer.json');
  const bytes = readFileBounded(file, MAX_TOKENIZER_BYTES, 'tokenizer.json', 'A base model folder needs tokenizer.json.');
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new MoaError(`${file}: not valid JSON (${errorMessage(e)})`);
  }
  const fingerprint = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  return tokenizerFromJson(file, raw, readOptional(join(modelDir, 'tokenizer_config.json')), readOptional(join(modelDir, 'config.json')), fingerprint);
}

/** The tokenizer a parsed tokenizer.json describes (pure: the fuzz tests feed it anything). */
export function tokenizerFromJson(file: string, raw: unknown, tokConfig: Record<string, unknown> | undefined, modelConfig: Record<string, unknown> | undefined, fingerprint: string): Tokenizer {
  if (!isObject(raw)) throw new MoaError(`${file}: expected a JSON object`);
  const moa = raw['moa'];
  if (isObject(moa) && moa['type'] === 'bytes') {
    const int = (k: string, d: number): number => {
      const v = moa[k];
      if (v === undefined) return d;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 1 << 20) throw new MoaError(`${file}: moa.${k} must be an integer from 0 to ${1 << 20}`);
      return v;
    };
    const vocab = int('vocab_size', 258);
    const bos = int('bos_token_id', 256);
    const eos = int('eos_token_id', 257);
    if (vocab < 256 || bos >= vocab || eos >= vocab) throw new MoaError(`${file}: moa: the byte tokenizer needs vocab_size >= 256 with bos_token_id and eos_token_id below it`);
    const layout = moa['fim_layout'];
    if (layout !== undefined && layout !== 'psm' && layout !== 'spm') throw new MoaError(`${file}: moa.fim_layout must be "psm" or "spm"`);
    return new ByteTokenizer(bos, eos, vocab, byteAddedTokens(file, raw['added_tokens'], vocab), layout);
  }
  const model = raw['model'];
  const kind = isObject(model) && typeof model['type'] === 'string' ? model['type'] : 'unknown';
  if (kind !== 'BPE') {
    throw new MoaError(`${file}: tokenizer model "${kind}" is not supported (byte-level BPE tokenizers, as Llama 3, Qwen2 and GPT-2 use, and the built-in byte tokenizer are)`);
  }
  let impl: HfTokenizerImpl;
  try {
    impl = new HfTokenizerImpl(raw, tokConfig ?? {});
    // Some malformed parts only fail when used: find out now, with the file named, not mid-completion.
    impl.decode(impl.encode('def f(x):\n\treturn "é ▁ 1"', { add_special_tokens: false }).ids, { skip_special_tokens: true });
  } catch (e) {
    throw new MoaError(`${file}: could not build the tokenizer (${errorMessage(e)})`);
  }
  const lookup = (t: string) => {
    try {
      return impl.token_to_id(t);
    } catch {
      return undefined;
    }
  };
  const eos = specialId(modelConfig, tokConfig, 'eos', lookup);
  if (eos === null) throw new MoaError(`${file}: no end-of-sequence token (set eos_token_id in config.json or eos_token in tokenizer_config.json)`);
  return new HfTokenizer(impl, fingerprint, vocabularySize(raw), specialId(modelConfig, tokConfig, 'bos', lookup), eos);
}

/** A byte tokenizer's added tokens by text: ids past the 256 bytes and inside the vocabulary. */
function byteAddedTokens(file: string, raw: unknown, vocab: number): Map<string, number> {
  const out = new Map<string, number>();
  if (raw === undefined) return out;
  if (!Array.isArray(raw)) throw new MoaError(`${file}: added_tokens must be a list`);
  for (const [i, t] of raw.entries()) {
    const id = isObject(t) ? t['id'] : undefined;
    const content = isObject(t) ? t['content'] : undefined;
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 256 || id >= vocab || typeof content !== 'string') {
      throw new MoaError(`${file}: added_tokens[${i}] needs an integer id from 256 to ${vocab - 1} (vocab_size) and a string content`);
    }
    out.set(content, id);
  }
  return out;
}

/**
 * Ids run from 0 to the largest one the model's vocabulary or the added tokens use. Added tokens
 * are often in the vocabulary too (GPT-2's <|endoftext|>): counting both lists counted them twice.
 */
export function vocabularySize(raw: Record<string, unknown>): number {
  const model = raw['model'];
  let max = -1;
  if (isObject(model) && isObject(model['vocab'])) for (const id of Object.values(model['vocab'])) if (typeof id === 'number' && id > max) max = id;
  if (Array.isArray(raw['added_tokens'])) for (const t of raw['added_tokens']) if (isObject(t) && typeof t['id'] === 'number' && t['id'] > max) max = t['id'];
  return max + 1;
}
