import { Tokenizer as HfTokenizerImpl } from '@huggingface/tokenizers';
import type { Tokenizer } from './types';

/**
 * A Hugging Face `tokenizer.json` (BPE as in GPT-2, Llama 3, Qwen2, with added and special tokens)
 * through Hugging Face's own JS implementation, rather than a BPE written here by hand.
 */
export class HfTokenizer implements Tokenizer {
  readonly id: string;
  private readonly encoder = new TextEncoder();

  constructor(
    private readonly impl: HfTokenizerImpl,
    fingerprint: string,
    readonly vocabSize: number,
    readonly bosId: number | null,
    readonly eosId: number,
  ) {
    this.id = `hf-${fingerprint}`;
  }

  encode(text: string): Uint32Array {
    return Uint32Array.from(this.impl.encode(text, { add_special_tokens: false }).ids);
  }

  /** Special tokens never reach the text; the rest decodes to UTF-8 bytes. */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    // The library refuses an empty list; nothing generated is simply no text.
    if (ids.length === 0) return new Uint8Array(0);
    return this.encoder.encode(this.impl.decode(Array.from(ids), { skip_special_tokens: true, clean_up_tokenization_spaces: false }));
  }

  tokenToId(token: string): number | undefined {
    return this.impl.token_to_id(token);
  }
}
