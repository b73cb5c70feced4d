export interface Tokenizer {
  /** Identifies the vocabulary, so shards know which tokenizer made them. */
  readonly id: string;
  readonly vocabSize: number;
  /** Null for models that use no beginning-of-sequence token (Qwen2, GPT-2). */
  readonly bosId: number | null;
  readonly eosId: number;
  encode(text: string): Uint32Array;
  /** Token ids to bytes; callers decode UTF-8 themselves so a split character is never mangled. */
  decodeBytes(ids: ArrayLike<number>): Uint8Array;
  /** The id of one vocabulary or added token by its text (HF tokenizers); how FIM tokens are found. */
  tokenToId?(token: string): number | undefined;
  /** The FIM layout the model was trained to be served with, when its tokenizer.json says (moa-tiny: `spm`). */
  readonly fimLayout?: 'psm' | 'spm';
}
