import type { Tokenizer } from '../tokenizer/types';

/**
 * A base model's fill-in-the-middle tokens and layout: prefix-suffix-middle, `P prefix S suffix M`
 * (every family listed here), or suffix-prefix-middle, `P S suffix M prefix` (Code Llama's SPM;
 * what moa-tiny's tokenizer.json asks for). The model writes the middle after the last token.
 */
export interface FimTokens {
  family: string;
  layout: FimLayout;
  prefix: number;
  suffix: number;
  middle: number;
  /** Besides EOS, tokens that end a middle (the FIM markers and the family's padding/file separators). */
  stop: number[];
}

export type FimLayout = 'psm' | 'spm';

/** The FIM token names of the families we know; the first whose three markers all exist wins. */
const FIM_FAMILIES: readonly { family: string; prefix: string; suffix: string; middle: string; stop: string[] }[] = [
  // Qwen2.5-Coder (and CodeGemma, which uses the same marker names).
  { family: 'qwen', prefix: '<|fim_prefix|>', suffix: '<|fim_suffix|>', middle: '<|fim_middle|>', stop: ['<|fim_pad|>', '<|file_sep|>', '<|repo_name|>', '<|file_separator|>'] },
  // StarCoder, StarCoder2, SantaCoder.
  { family: 'starcoder', prefix: '<fim_prefix>', suffix: '<fim_suffix>', middle: '<fim_middle>', stop: ['<fim_pad>', '<file_sep>', '<filename>'] },
  // DeepSeek-Coder: begin / hole / end play prefix / suffix / middle.
  { family: 'deepseek-coder', prefix: '<｜fim▁begin｜>', suffix: '<｜fim▁hole｜>', middle: '<｜fim▁end｜>', stop: ['<|EOT|>'] },
];

/** The tokenizer's FIM tokens, or undefined when it defines none (the byte-level moa-tiny). */
export function detectFim(tokenizer: Tokenizer): FimTokens | undefined {
  const id = (t: string) => tokenizer.tokenToId?.(t);
  for (const f of FIM_FAMILIES) {
    const prefix = id(f.prefix);
    const suffix = id(f.suffix);
    const middle = id(f.middle);
    if (prefix === undefined || suffix === undefined || middle === undefined) continue;
    const extra = f.stop.map(id).filter((x): x is number => x !== undefined);
    return { family: f.family, layout: tokenizer.fimLayout ?? 'psm', prefix, suffix, middle, stop: [prefix, suffix, middle, ...extra] };
  }
  return undefined;
}

/** Share of a FIM prompt's budget the suffix may take when both sides are long; the prefix gets the rest. */
export const FIM_SUFFIX_SHARE = 0.25;

/**
 * Splits `available` tokens between prefix and suffix: the suffix is capped at its share, and
 * whatever one side does not need goes to the other, so a short suffix never wastes budget.
 */
export function splitBudget(available: number, prefixLen: number, suffixLen: number, suffixShare = FIM_SUFFIX_SHARE): { prefix: number; suffix: number } {
  const avail = Math.max(0, Math.floor(available));
  let suffix = Math.min(suffixLen, Math.floor(avail * suffixShare));
  const prefix = Math.min(prefixLen, avail - suffix);
  suffix = Math.min(suffixLen, avail - prefix);
  return { prefix, suffix };
}

// Encoding a whole large file on every keystroke is wasted work: only a window at the cursor is
// encoded, grown until it yields this many tokens beyond what is kept. A cut in the middle of a
// word changes only the tokens of that word, which then lie in the part that is dropped
// (prompt.test.ts compares the kept tokens with an encoding of the whole text).
const WINDOW_SLACK = 16;

const isByteLevel = (t: Tokenizer) => t.id.startsWith('moa-bytes');

/** Encodes a window at one end of `text` (growing it as needed); returns at least `n` tokens when the text has them. */
function encodeWindow(text: string, tokenizer: Tokenizer, n: number, end: 'tail' | 'head'): Uint32Array {
  if (n <= 0 || text.length === 0) return new Uint32Array(0);
  for (let chars = Math.max(256, 4 * (n + WINDOW_SLACK)); ; chars *= 2) {
    if (chars >= text.length) return tokenizer.encode(text);
    const ids = tokenizer.encode(end === 'tail' ? text.slice(text.length - chars) : text.slice(0, chars));
    if (ids.length >= n + WINDOW_SLACK) return ids;
  }
}

const isContinuation = (t: Tokenizer, id: number) => isByteLevel(t) && id >= 0x80 && id < 0xc0;

/** The last `n` of `ids`; with the byte tokenizer the cut never starts inside a character. */
function keepTail(ids: Uint32Array, n: number, tokenizer: Tokenizer): Uint32Array {
  let start = Math.max(0, ids.length - n);
  if (start > 0) while (start < ids.length && isContinuation(tokenizer, ids[start]!)) start++;
  return ids.subarray(start);
}

/** The first `n` of `ids`; with the byte tokenizer the cut never ends inside a character. */
function keepHead(ids: Uint32Array, n: number, tokenizer: Tokenizer): Uint32Array {
  let end = Math.min(ids.length, n);
  // Moving the cut back to the lead byte of the character it splits leaves that character out whole.
  if (end < ids.length) while (end > 0 && isContinuation(tokenizer, ids[end]!)) end--;
  return ids.subarray(0, end);
}

/** The document's own text must not restructure the prompt: FIM markers typed in it are dropped. */
function withoutIds(ids: Uint32Array, drop: Set<number>): Uint32Array {
  if (drop.size === 0 || !ids.some((x) => drop.has(x))) return ids;
  return ids.filter((x) => !drop.has(x));
}

export interface Prompt {
  ids: Uint32Array;
  /** The FIM layout used, or undefined for a prefix-only prompt. */
  fim?: FimTokens;
  prefixTokens: number;
  suffixTokens: number;
}

/**
 * The completion prompt within `budget` tokens, special tokens included (a budget below the
 * special tokens' count leaves no text, not fewer markers). Prefix-only for models
 * without FIM tokens: BOS, then the tokens nearest the cursor. With FIM tokens:
 * BOS? `P` prefix-tail `S` suffix-head `M` (or suffix first, `spm`), the budget split by `splitBudget`.
 */
/** `fim`: the model's FIM tokens, `null` for a model without them (prefix only); found from the tokenizer when omitted. */
export function buildPrompt(tokenizer: Tokenizer, prefix: string, suffix: string, budget: number, fim: FimTokens | null = detectFim(tokenizer) ?? null): Prompt {
  const bos = tokenizer.bosId === null ? [] : [tokenizer.bosId];
  if (!fim) {
    const n = Math.max(0, budget - bos.length);
    const p = keepTail(encodeWindow(prefix, tokenizer, n, 'tail'), n, tokenizer);
    return { ids: Uint32Array.from([...bos, ...p]), prefixTokens: p.length, suffixTokens: 0 };
  }
  const available = Math.max(0, budget - bos.length - 3);
  const drop = new Set(fim.stop);
  const p = withoutIds(encodeWindow(prefix, tokenizer, available, 'tail'), drop);
  const s = withoutIds(encodeWindow(suffix, tokenizer, available, 'head'), drop);
  const split = splitBudget(available, p.length, s.length);
  const pk = keepTail(p, split.prefix, tokenizer);
  const sk = keepHead(s, split.suffix, tokenizer);
  const ids = Uint32Array.from(fim.layout === 'spm' ? [...bos, fim.prefix, fim.suffix, ...sk, fim.middle, ...pk] : [...bos, fim.prefix, ...pk, fim.suffix, ...sk, fim.middle]);
  return { ids, fim, prefixTokens: pk.length, suffixTokens: sk.length };
}

/** Prefix-only prompt of at most `budget` tokens, BOS included (the tiny byte-level base model's form). */
export function buildPrefixPrompt(prefix: string, tokenizer: Tokenizer, budget: number): Uint32Array {
  return buildPrompt(tokenizer, prefix, '', budget, null).ids;
}

/** Characters before a 1-based line and column, clamped to the document. */
/**
 * The offset of a 1-based line and column, or why there is none: the file's line count, or the
 * line's length (column len + 1 is the end of the line, where a completion often goes).
 */
export function checkedOffsetAt(text: string, line: number, col: number): { offset: number } | { problem: string } {
  const lines = text.split('\n');
  if (text.endsWith('\n')) lines.pop();
  const count = Math.max(1, lines.length);
  if (line < 1 || line > count) return { problem: `line ${line} is outside the file: it has ${count} line${count > 1 ? 's' : ''} (1–${count})` };
  const len = (lines[line - 1] ?? '').replace(/\r$/, '').length;
  if (col < 1 || col > len + 1) return { problem: `column ${col} is outside line ${line}: it has ${len} character${len === 1 ? '' : 's'} (columns 1–${len + 1})` };
  return { offset: offsetAt(text, line, col) };
}

export function offsetAt(text: string, line: number, col: number): number {
  let offset = 0;
  for (let l = 1; l < line; l++) {
    const nl = text.indexOf('\n', offset);
    if (nl < 0) return text.length;
    offset = nl + 1;
  }
  const end = text.indexOf('\n', offset);
  const lineEnd = end < 0 ? text.length : end;
  return Math.min(offset + Math.max(0, col - 1), lineEnd);
}

/** Prompt tokens decoded with the continuation: enough for any decoder that looks at neighbours. */
const DECODE_CONTEXT = 8;

/**
 * The bytes of generated `ids` as they read after the prompt: the prompt's last tokens are decoded
 * with them and their own decoding is taken away, as streaming decoders do. Decoding the new ids
 * alone loses what a decoder does only at the start of a text: SentencePiece-style tokenizers
 * (Llama-2, Mistral: `Strip(start=1)` after turning "▁" into spaces) drop the first token's leading
 * space, gluing the completion to the text before it.
 */
export function decodeContinuation(tokenizer: Tokenizer, promptIds: ArrayLike<number>, ids: ArrayLike<number>): Uint8Array {
  if (ids.length === 0) return new Uint8Array(0);
  const tail = Array.from(promptIds).slice(-DECODE_CONTEXT);
  const head = tokenizer.decodeBytes(tail);
  const whole = tokenizer.decodeBytes([...tail, ...Array.from(ids)]);
  const agrees = head.length <= whole.length && head.every((b, i) => whole[i] === b);
  return agrees ? whole.subarray(head.length) : tokenizer.decodeBytes(ids);
}

/** Decodes generated bytes, dropping an incomplete UTF-8 sequence at the end. */
export function decodeCompletion(bytes: Uint8Array): string {
  let end = bytes.length;
  let back = 0;
  while (back < 4 && end - back - 1 >= 0 && (bytes[end - back - 1]! & 0xc0) === 0x80) back++;
  if (end - back - 1 >= 0) {
    const lead = bytes[end - back - 1]!;
    const need = lead >= 0xf0 ? 3 : lead >= 0xe0 ? 2 : lead >= 0xc0 ? 1 : 0;
    if (need > back) end = end - back - 1;
  }
  return new TextDecoder('utf-8').decode(bytes.subarray(0, end));
}
