import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadTokenizer } from '../../src/core/tokenizer/load';
import { repoRoot, tempWorkspace } from '../helpers/tmp';

const fixtures = join(repoRoot(), 'test', 'fixtures', 'tokenizers');
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

test('a byte-level BPE tokenizer.json encodes exactly as Hugging Face tokenizers (Rust) did', () => {
  const dir = join(fixtures, 'bytelevel-bpe');
  const tok = loadTokenizer(dir);
  const reference = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { text: string; ids: number[] }[];
  for (const { text, ids } of reference) assert.deepEqual(Array.from(tok.encode(text)), ids, JSON.stringify(text));
  assert.equal(tok.bosId, null, 'no BOS: config.json says null');
  assert.equal(tok.eosId, (tok as unknown as { tokenToId(t: string): number }).tokenToId('<|endoftext|>'));
  assert.match(tok.id, /^hf-[0-9a-f]{16}$/);
});

test('BPE round trip: decode(encode(text)) is the text; special tokens are one id each and never decoded into text', () => {
  const tok = loadTokenizer(join(fixtures, 'bytelevel-bpe'));
  for (const text of ['def f(x):\n    return x * 2\n', 'Ünïcödé 日本語 🚀 and\ttabs\r\n', '']) {
    assert.equal(decode(tok.decodeBytes(tok.encode(text))), text);
  }
  const ids = Array.from(tok.encode('a<|fim_middle|>b'));
  const special = (tok as unknown as { tokenToId(t: string): number }).tokenToId('<|fim_middle|>');
  assert.ok(ids.includes(special));
  assert.equal(decode(tok.decodeBytes(ids)), 'ab');
});

test('the built-in byte tokenizer round-trips any text, bytes for ids', () => {
  const tok = loadTokenizer(join(repoRoot(), 'models', 'moa-tiny'));
  assert.equal(tok.bosId, 256);
  assert.equal(tok.eosId, 257);
  const text = 'x = "é€🚀"\n';
  assert.deepEqual(Array.from(tok.encode(text)), Array.from(Buffer.from(text)));
  assert.equal(decode(tok.decodeBytes([...tok.encode(text), 257])), text);
});

test('moa-tiny has FIM sentinels the prompt builder finds; a document that spells one stays bytes', async () => {
  const { detectFim } = await import('../../src/core/inference/prompt');
  const tok = loadTokenizer(join(repoRoot(), 'models', 'moa-tiny'));
  const fim = detectFim(tok);
  assert.deepEqual(fim && { family: fim.family, layout: fim.layout, prefix: fim.prefix, middle: fim.middle, suffix: fim.suffix }, { family: 'starcoder', layout: 'spm', prefix: 258, middle: 259, suffix: 260 });
  assert.equal(tok.vocabSize, 261);
  assert.deepEqual(Array.from(tok.encode('<fim_prefix>')), Array.from(Buffer.from('<fim_prefix>')));
  assert.equal(decode(tok.decodeBytes([258, 0x61, 259, 260])), 'a', 'sentinels are never decoded into text');
});

test('a byte tokenizer\'s added tokens must be ids past the bytes and inside its vocabulary', () => {
  const bad = (added: unknown) => JSON.stringify({ moa: { type: 'bytes', vocab_size: 259 }, added_tokens: added });
  const ws = tempWorkspace({ 'a/tokenizer.json': bad([{ id: 259, content: '<x>' }]), 'b/tokenizer.json': bad([{ id: 65, content: 'A' }]), 'c/tokenizer.json': bad({}), 'd/tokenizer.json': bad([{ id: 258, content: '<x>' }]), 'e/tokenizer.json': JSON.stringify({ moa: { type: 'bytes', fim_layout: 'pms' } }) });
  try {
    for (const d of ['a', 'b']) assert.throws(() => loadTokenizer(join(ws.root, d)), (e: Error) => e.message.includes(join(ws.root, d, 'tokenizer.json')) && /added_tokens\[0\] needs an integer id from 256 to 258/.test(e.message));
    assert.throws(() => loadTokenizer(join(ws.root, 'c')), /added_tokens must be a list/);
    assert.equal(loadTokenizer(join(ws.root, 'd')).tokenToId?.('<x>'), 258);
    assert.throws(() => loadTokenizer(join(ws.root, 'e')), /moa.fim_layout must be "psm" or "spm"/);
  } finally {
    ws.cleanup();
  }
});

test('unsupported or broken tokenizer.json files are refused naming the file', () => {
  const ws = tempWorkspace({ 'a/tokenizer.json': '{"model":{"type":"Unigram","vocab":[]}}', 'b/tokenizer.json': '{not json', 'c/x': '' });
  try {
    assert.throws(() => loadTokenizer(join(ws.root, 'a')), (e: Error) => e.message.includes(join(ws.root, 'a', 'tokenizer.json')) && /Unigram/.test(e.message));
    assert.throws(() => loadTokenizer(join(ws.root, 'b')), /not valid JSON/);
    assert.throws(() => loadTokenizer(join(ws.root, 'c')), /missing/);
    const json = JSON.parse(readFileSync(join(fixtures, 'bytelevel-bpe', 'tokenizer.json'), 'utf8'));
    writeFileSync(join(ws.root, 'c', 'tokenizer.json'), JSON.stringify(json));
    assert.throws(() => loadTokenizer(join(ws.root, 'c')), /no end-of-sequence token/);
  } finally {
    ws.cleanup();
  }
});

test('a completion keeps its leading space with a SentencePiece-style decoder (Strip(start=1)), as the Rust library decodes it', async () => {
  const { decodeContinuation } = await import('../../src/core/inference/prompt');
  const dir = join(repoRoot(), 'test', 'fixtures', 'tokenizers', 'sentencepiece-bpe');
  const tok = loadTokenizer(dir);
  const cases = JSON.parse(readFileSync(join(dir, 'continuation-reference.json'), 'utf8')) as { prompt_ids: number[]; new_ids: number[]; new_alone: string; continuation: string }[];
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  for (const c of cases) {
    assert.equal(text(decodeContinuation(tok, c.prompt_ids, c.new_ids)), c.continuation);
    assert.equal(text(tok.decodeBytes(c.new_ids)), c.new_alone, 'decoding the new ids alone is what lost the space');
  }
  assert.equal(text(decodeContinuation(tok, cases[0]!.prompt_ids, cases[0]!.new_ids)), ' return x + 1');
  // The byte-level tokenizers are unchanged by it.
  const bpe = loadTokenizer(join(repoRoot(), 'test', 'fixtures', 'tokenizers', 'bytelevel-bpe'));
  const p = bpe.encode('def f(x):');
  const n = bpe.encode(' return x');
  assert.equal(text(decodeContinuation(bpe, p, n)), ' return x');
});

test('the vocabulary size counts added tokens once (they are in the vocabulary too), as the Rust library does', () => {
  // get_vocab_size(with_added_tokens=True) is 600 for both fixtures.
  for (const name of ['bytelevel-bpe', 'sentencepiece-bpe']) assert.equal(loadTokenizer(join(repoRoot(), 'test', 'fixtures', 'tokenizers', name)).vocabSize, 600, name);
});
