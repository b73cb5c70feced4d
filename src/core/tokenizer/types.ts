export interface Tokenizer {
  /** Identifies the vocabulary, so shards know which tokenizer made them. */
  readonly id: string;
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  encode(text: string): Uint32Array;
  /** Token ids to bytes; callers decode UTF-8 themselves so a split character is never mangled. */
  decodeBytes(ids: ArrayLike<number>): Uint8Array;
}
