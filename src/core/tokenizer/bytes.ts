import type { Tokenizer } from './types';

/**
 * The built-in byte-level vocabulary: ids 0–255 are bytes, then BOS, EOS and any added tokens
 * (moa-tiny's FIM sentinels). Text never encodes to an added token: only the prompt builder
 * places them, by id, so a document that spells `<fim_prefix>` stays bytes.
 */
export class ByteTokenizer implements Tokenizer {
  readonly id = 'moa-bytes-v1';
  private readonly encoder = new TextEncoder();

  constructor(
    readonly bosId = 256,
    readonly eosId = 257,
    readonly vocabSize = 258,
    private readonly added: ReadonlyMap<string, number> = new Map(),
    readonly fimLayout?: 'psm' | 'spm',
  ) {}

  tokenToId(token: string): number | undefined {
    return this.added.get(token);
  }

  encode(text: string): Uint32Array {
    return Uint32Array.from(this.encoder.encode(text));
  }

  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    const out: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (id >= 0 && id < 256) out.push(id);
    }
    return Uint8Array.from(out);
  }
}
