import { closeSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import type { Tokenizer } from '../tokenizer/types';
import { tempPathFor } from '../util/atomic';

/** One file as a document: BOS (when the tokenizer has one), its tokens, EOS. */
export function encodeDocument(tokenizer: Tokenizer, content: Buffer): Uint32Array {
  const ids = tokenizer.encode(content.toString('utf8'));
  const lead = tokenizer.bosId === null ? 0 : 1;
  const doc = new Uint32Array(ids.length + lead + 1);
  if (tokenizer.bosId !== null) doc[0] = tokenizer.bosId;
  doc.set(ids, lead);
  doc[doc.length - 1] = tokenizer.eosId;
  return doc;
}

export function u32Bytes(ids: Uint32Array): Uint8Array {
  // Shards are little-endian on disk whatever the host; x86 and arm64 are LE, so this is a view.
  return new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength);
}

/** Appends uint32 token ids to a temp file; renamed into place only when complete. */
export class ShardWriter {
  private readonly tmp: string;
  private readonly fd: number;
  tokens = 0;

  constructor(readonly target: string) {
    this.tmp = tempPathFor(target);
    this.fd = openSync(this.tmp, 'w');
  }

  /** Returns the document's offset in tokens. */
  append(ids: Uint32Array): number {
    writeSync(this.fd, u32Bytes(ids));
    this.tokens += ids.length;
    return this.tokens - ids.length;
  }

  commit(): void {
    closeSync(this.fd);
    renameSync(this.tmp, this.target);
  }

  abort(): void {
    closeSync(this.fd);
    rmSync(this.tmp, { force: true });
  }
}

/**
 * Writes a domain's train and validation shards (`paths`) through `fill`: both are renamed into
 * place when it returns, and neither when it throws. Returns the tokens written to each.
 */
export function writeShardPair(paths: readonly [string, string], fill: (writers: readonly [ShardWriter, ShardWriter]) => void): [number, number] {
  const writers = [new ShardWriter(paths[0]), new ShardWriter(paths[1])] as const;
  try {
    fill(writers);
    for (const w of writers) w.commit();
  } catch (e) {
    for (const w of writers) w.abort();
    throw e;
  }
  return [writers[0].tokens, writers[1].tokens];
}
